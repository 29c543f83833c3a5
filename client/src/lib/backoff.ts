/** Reconnect delays: exponential from 0.5 s up to 15 s, with jitter. */

export const BACKOFF_BASE_MS = 500
export const BACKOFF_CAP_MS = 15_000
const JITTER = 0.2

/**
 * The delay before reconnect attempt number `attempt` (0 for the first retry):
 * 0.5 s, 1 s, 2 s, 4 s, 8 s, 15 s, 15 s... each randomised by ±20 % so that many clients
 * dropped at once do not all come back at the same instant, and kept within 0.5-15 s.
 */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const step = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt)
  const jittered = step * (1 - JITTER + 2 * JITTER * random())
  return Math.round(Math.min(BACKOFF_CAP_MS, Math.max(BACKOFF_BASE_MS, jittered)))
}
