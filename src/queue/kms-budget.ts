/**
 * One KMS requests-per-second budget shared by every worker process, kept in Redis.
 * A token bucket whose rate backs off multiplicatively when KMS throttles and ramps back up
 * additively (AIMD), so all workers slow down together and recover together.
 * Redis holds only numbers here: rates, token counts, times.
 */
import type { RedisConnection } from './redis-connection.ts';

// KEYS[1]: bucket hash. ARGV: maxRate (req/s), tokens wanted, mode ('take' | 'throttled').
// Returns {reserved, waitMs}. reserved = 1: the tokens are the caller's, to be used after waitMs
// (tokens may go below zero: a queue of reservations, repaid as the bucket refills). reserved = 0:
// more than HORIZON_MS of reservations are queued (or KMS just throttled): ask again after waitMs.
// One call per request instead of every waiter polling: measured in bench B5, polling cost
// 6.5 ms of worker CPU per KMS request.
const SCRIPT = `
local key = KEYS[1]
local maxRate = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local horizonMs = 250
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', key, 'tokens', 'ts', 'rate', 'until')
local rate = tonumber(s[3]) or maxRate
local ts = tonumber(s[2]) or now
local tokens = tonumber(s[1])
local hold = tonumber(s[4]) or 0
local elapsed = math.max(0, now - ts)
-- additive increase: back to the full budget within ~10 s of the last throttle
rate = math.min(maxRate, rate + maxRate * 0.1 * elapsed / 1000)
local burst = math.max(1, rate / 20)
if tokens == nil then tokens = burst end
tokens = math.min(burst, tokens + elapsed * rate / 1000)
local reserved = 0
local wait = 0
if ARGV[3] == 'throttled' then
  rate = math.max(maxRate * 0.05, rate * 0.5)
  -- reservations already handed out stay owed; the burst allowance goes
  tokens = math.min(tokens, 0)
  hold = now + 250
elseif now < hold then
  wait = hold - now
elseif tokens - n >= -rate * horizonMs / 1000 then
  tokens = tokens - n
  reserved = 1
  if tokens < 0 then wait = math.ceil(-tokens * 1000 / rate) end
else
  wait = math.ceil((-(rate * horizonMs / 1000) - (tokens - n)) * 1000 / rate)
end
redis.call('HSET', key, 'tokens', tokens, 'ts', now, 'rate', rate, 'until', hold)
redis.call('PEXPIRE', key, 600000)
return {reserved, wait}
`;

export interface BudgetState {
  ratePerSec: number;
}

export class KmsBudget {
  constructor(
    private readonly redis: RedisConnection,
    private readonly key: string,
    private readonly maxRatePerSec: number,
  ) {}

  get unlimited(): boolean {
    return this.maxRatePerSec <= 0;
  }

  /** Waits until one request may be sent: reserves its token, then sleeps until the token is due. */
  async take(signal?: AbortSignal): Promise<void> {
    if (this.unlimited) return;
    for (;;) {
      signal?.throwIfAborted();
      const [reserved, wait] = (await this.redis.eval(SCRIPT, 1, this.key, this.maxRatePerSec, 1, 'take')) as [number, number];
      if (reserved === 1) {
        if (wait > 0) await delay(wait, signal);
        return;
      }
      await delay(wait + Math.random() * Math.min(20, wait), signal);
    }
  }

  /** KMS said ThrottlingException: every worker halves its pace. */
  async throttled(): Promise<void> {
    if (this.unlimited) return;
    await this.redis.eval(SCRIPT, 1, this.key, this.maxRatePerSec, 0, 'throttled');
  }

  async state(): Promise<BudgetState> {
    const rate = await this.redis.hget(this.key, 'rate');
    return { ratePerSec: rate === null ? this.maxRatePerSec : Number(rate) };
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
