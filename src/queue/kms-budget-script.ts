/**
 * The Redis side of the shared KMS budget (kms-budget.ts): one Lua script, one hash per budget
 * scope. Redis holds only numbers here: rates, token counts, times (invariant 5).
 *
 * A token bucket with reservations. `take n` reserves up to n tokens in one round trip: a block.
 * Tokens may go below zero, a queue of reservations repaid as the bucket refills, so the k-th
 * token of a block is due `(k - tokensBefore) / rate` seconds after the grant; the caller spends
 * them at those times, at the global rate, in its own process. Reservations reach at most
 * HORIZON_MS ahead: a block is cut to what fits (at least one token), or refused with the wait
 * until one token fits. `return n` gives back tokens a caller reserved and will not use.
 *
 * The rate backs off multiplicatively when KMS throttles and climbs back additively (AIMD):
 *   - `throttled`: rate = max(minRate, min(rate, granted) * BETA), at most once per COOLDOWN_MS
 *     (the calls already sent at the old rate are throttled too; counting each of them would
 *     floor the rate), and reservations already handed out stay owed (the burst allowance goes).
 *     `granted` is the rate tokens were actually handed out at (an exponentially weighted
 *     average over ~1 s): when the workers cannot use the whole budget, halving the budget
 *     would not slow them (measured: workers at 15 req/s under a budget of 20 kept throttling
 *     at a capacity of 10 until the next cut);
 *   - between throttles the rate grows by maxRate * A * 2^(s / D) per second, s being the
 *     seconds since the last throttle: slowly right after one (so a KMS whose capacity dropped
 *     sees few throttles: the sawtooth's teeth are seconds apart), doubling every D seconds
 *     after (so the full budget is back within ~18 s once throttling stops, from a twentieth of it). Integrated over
 *     [s0, s1]: maxRate * A * D / ln 2 * (2^(s1/D) - 2^(s0/D)).
 * Measured by test/kms-throttling-storm.test.ts (capacity at 10 % of the budget for a while).
 */

/** How far ahead a block may reach. A worker asks for ~BLOCK_MS of its own recent rate. */
export const HORIZON_MS = 250;
/** Tokens the bucket banks while nobody takes them: 50 ms of the rate. */
export const BURST_MS = 50;
export const BETA = 0.5;
export const COOLDOWN_MS = 500;
export const INCREASE_A = 0.002;
export const INCREASE_D_SECONDS = 2.5;
/** The rate never falls below this fraction of the budget (nor below 0.5 req/s). */
export const MIN_RATE_FRACTION = 0.02;

// KEYS[1]: the budget's hash. ARGV: maxRate (req/s), mode ('take' | 'return' | 'throttled'), n.
// Returns {granted, floor(1000 * tokensBefore), floor(1000 * rate), waitMs}.
// Lua numbers become integers in replies: hence the scaled values.
export const BUDGET_SCRIPT = `
local key = KEYS[1]
local maxRate = tonumber(ARGV[1])
local mode = ARGV[2]
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local s = redis.call('HMGET', key, 'tokens', 'ts', 'rate', 'throttledAt', 'cutAt', 'granted')
local tokens = tonumber(s[1])
local ts = tonumber(s[2]) or now
local rate = math.min(maxRate, tonumber(s[3]) or maxRate)
local throttledAt = tonumber(s[4])
local cutAt = tonumber(s[5]) or 0
local elapsed = math.max(0, now - ts)
-- tokens handed out per second, weighted over ~1 s: g * e^(-dt/1000) + tokens now
local grantedRate = (tonumber(s[6]) or rate) * math.exp(-elapsed / 1000)
if rate < maxRate then
  if throttledAt == nil then
    rate = maxRate
  else
    local d = ${INCREASE_D_SECONDS}
    local g0 = 2 ^ math.min(30, math.max(0, ts - throttledAt) / 1000 / d)
    local g1 = 2 ^ math.min(30, math.max(0, now - throttledAt) / 1000 / d)
    rate = math.min(maxRate, rate + maxRate * ${INCREASE_A} * d / math.log(2) * (g1 - g0))
  end
end
local burst = math.max(1, rate * ${BURST_MS} / 1000)
if tokens == nil then tokens = burst end
tokens = math.min(burst, tokens + elapsed * rate / 1000)
local before = tokens
local granted = 0
local wait = 0
if mode == 'take' then
  local room = tokens + rate * ${HORIZON_MS} / 1000
  if room >= 1 then
    granted = math.min(n, math.floor(room))
    tokens = tokens - granted
    grantedRate = grantedRate + granted
  else
    wait = math.ceil((1 - room) * 1000 / rate)
  end
elseif mode == 'return' then
  tokens = math.min(burst, tokens + n)
elseif mode == 'throttled' then
  throttledAt = now
  if now - cutAt >= ${COOLDOWN_MS} then
    rate = math.max(math.max(0.5, maxRate * ${MIN_RATE_FRACTION}), math.min(rate, grantedRate) * ${BETA})
    cutAt = now
    tokens = math.min(tokens, 0)
  end
end
if throttledAt ~= nil then
  redis.call('HSET', key, 'tokens', tokens, 'ts', now, 'rate', rate, 'granted', grantedRate, 'throttledAt', throttledAt, 'cutAt', cutAt)
else
  redis.call('HSET', key, 'tokens', tokens, 'ts', now, 'rate', rate, 'granted', grantedRate)
end
redis.call('PEXPIRE', key, 600000)
return {granted, math.floor(before * 1000), math.floor(rate * 1000), wait}
`;
