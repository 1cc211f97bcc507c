/**
 * One KMS requests-per-second budget shared by every worker process, kept in Redis.
 * A token bucket whose rate backs off multiplicatively when KMS throttles and ramps back up
 * additively (AIMD), so all workers slow down together and recover together.
 * Redis holds only numbers here: rates, token counts, times.
 */
import type { Redis } from 'ioredis';

// KEYS[1]: bucket hash. ARGV: maxRate (req/s), tokens wanted, mode ('take' | 'throttled').
// Returns milliseconds to wait before trying again (0 = granted).
const SCRIPT = `
local key = KEYS[1]
local maxRate = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
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
local wait = 0
if ARGV[3] == 'throttled' then
  rate = math.max(maxRate * 0.05, rate * 0.5)
  tokens = 0
  hold = now + 250
elseif now < hold then
  wait = hold - now
elseif tokens >= n then
  tokens = tokens - n
else
  wait = math.ceil((n - tokens) * 1000 / rate)
end
redis.call('HSET', key, 'tokens', tokens, 'ts', now, 'rate', rate, 'until', hold)
redis.call('PEXPIRE', key, 600000)
return wait
`;

export interface BudgetState {
  ratePerSec: number;
}

export class KmsBudget {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly maxRatePerSec: number,
  ) {}

  get unlimited(): boolean {
    return this.maxRatePerSec <= 0;
  }

  /** Waits until one request may be sent. */
  async take(signal?: AbortSignal): Promise<void> {
    if (this.unlimited) return;
    for (;;) {
      signal?.throwIfAborted();
      const wait = Number(await this.redis.eval(SCRIPT, 1, this.key, this.maxRatePerSec, 1, 'take'));
      if (wait <= 0) return;
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
