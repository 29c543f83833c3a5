import { backoffDelay } from '@/lib/backoff'

/** How many times a send of unknown outcome goes again by itself before it shows as failed. */
export const RESEND_MAX_ATTEMPTS = 5

/**
 * Automatic resends of sends whose outcome the server does not know (`unknown_outcome`:
 * it may or may not have stored them). Resending with the same client_id is safe: the
 * server stores a message once. The server holds back a connection's later sends while
 * one is unknown (they come back `unavailable`); those go again after it, so the room
 * gets our messages in the order we sent them.
 *
 * One timer for all: when it fires, `resend` gets every waiting client_id at once and
 * sends them in outbox order. Backoff grows with the attempts of the send that waits
 * longest; after `RESEND_MAX_ATTEMPTS` a send is the caller's to show as failed.
 */
export class Resends {
  private readonly attempts = new Map<string, number>()
  private readonly waiting = new Set<string>()
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly resend: (clientIds: ReadonlySet<string>) => void,
    private readonly delay: (attempt: number) => number = backoffDelay,
  ) {}

  /** The outcome of a send is unknown: true if it goes again (it stays pending). */
  unknown(clientId: string): boolean {
    const attempt = this.attempts.get(clientId) ?? 0
    if (attempt >= RESEND_MAX_ATTEMPTS) return false
    this.attempts.set(clientId, attempt + 1)
    this.waiting.add(clientId)
    this.schedule(attempt)
    return true
  }

  /** A send refused behind one that waits for its resend: it goes again after it. */
  heldBack(clientId: string) {
    this.waiting.add(clientId)
    this.schedule(0)
  }

  isWaiting(clientId: string): boolean {
    return this.waiting.has(clientId)
  }

  /** The send was answered for good (acked, or failed and shown). */
  settle(clientId: string) {
    this.attempts.delete(clientId)
    this.waiting.delete(clientId)
  }

  private schedule(attempt: number) {
    if (this.timer !== undefined) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      const due = new Set(this.waiting)
      this.waiting.clear()
      if (due.size > 0) this.resend(due)
    }, this.delay(attempt))
  }
}
