import { computed, reactive, watch } from 'vue'

import {
  type OutgoingAction,
  type OutgoingMessage,
  kindOf,
  outgoingFrame,
  resendWindowPassed,
  storedAction,
} from '@/lib/outgoing'
import { loadOutbox, saveOutbox } from '@/lib/outboxStorage'
import { Resends } from '@/lib/resends'
import { useConnectionStore } from '@/stores/connection'
import { useSessionStore } from '@/stores/session'

/** A send without an ack after this long is shown as failed, with a Retry button. */
export const ACK_TIMEOUT_MS = 10_000

/**
 * The outbox of the messages store: what we sent (messages and changes to them) until the
 * server acknowledges it, with the ack timers, the automatic resends of unknown outcomes,
 * the offline queue and its copy across a reload. It knows nothing of the timelines: the
 * store merges an acked message and then `settle`s it here.
 */
export function createOutbox() {
  const outbox = reactive<OutgoingMessage[]>([])
  const ackTimers = new Map<string, ReturnType<typeof setTimeout>>()
  const connection = useConnectionStore()
  const session = useSessionStore()

  /** Sends of unknown outcome (and those held back behind them) go again, in order. */
  const resends = new Resends((due) => {
    for (const entry of outbox) if (due.has(entry.clientId)) transmit(entry)
  })

  function settle(clientId: string) {
    timedOutOnce.delete(clientId)
    resends.settle(clientId)
    clearTimeout(ackTimers.get(clientId))
    ackTimers.delete(clientId)
    const index = outbox.findIndex((entry) => entry.clientId === clientId)
    if (index >= 0) outbox.splice(index, 1)
  }

  function fail(clientId: string, error: string, retryAfterMs: number | null = null) {
    const entry = outbox.find((candidate) => candidate.clientId === clientId)
    if (entry === undefined) return
    clearTimeout(ackTimers.get(clientId))
    ackTimers.delete(clientId)
    // Maybe stored: it goes again by itself (same client_id), still shown as pending.
    if (error === 'unknown_outcome' && resends.unknown(clientId)) {
      entry.status = 'pending'
      return
    }
    const index = outbox.indexOf(entry)
    const behindOne = outbox.some((other, i) => i < index && resends.isWaiting(other.clientId))
    if (error === 'unavailable' && behindOne) {
      resends.heldBack(clientId) // not taken, behind one of ours that goes again first
      return
    }
    resends.settle(clientId)
    if (kindOf(entry) !== 'send') {
      // A refused change has no place in the timeline: it is said once, and dropped.
      settle(clientId)
      connection.showNotice({ code: error, message: '', retryAfterMs })
      return
    }
    entry.status = 'failed'
    entry.error = error
    entry.retryAfterMs = retryAfterMs
  }

  /** Sends whose ack did not come on a socket we took for live, once (per client_id). */
  const timedOutOnce = new Set<string>()

  /**
   * No ack in time on a socket that looked live: most often it is dead without having said
   * so (a network that went away with no `offline` event, a half-open TCP connection). The
   * first time, the socket is replaced (the send is queued and goes again on the new one,
   * same client_id); a second time, the send is shown failed, with Retry.
   */
  function ackTimedOut(clientId: string) {
    if (timedOutOnce.has(clientId)) {
      timedOutOnce.delete(clientId)
      fail(clientId, 'timeout')
      return
    }
    timedOutOnce.add(clientId)
    ackTimers.delete(clientId)
    connection.reconnect()
  }

  /**
   * Sends an entry over the live socket (pending, with an ack timer), or queues it. A
   * message first sent longer ago than the server remembers its client_id is not sent
   * again on our own: it shows failed (`resend_window_passed`), and Retry sends it.
   */
  function transmit(entry: OutgoingMessage) {
    clearTimeout(ackTimers.get(entry.clientId))
    ackTimers.delete(entry.clientId)
    if (resendWindowPassed(entry, Date.now(), session.resendWindowMs)) {
      fail(entry.clientId, 'resend_window_passed')
      return
    }
    entry.error = null
    entry.retryAfterMs = null
    const sent =
      connection.state === 'live' &&
      connection.transmit(outgoingFrame(entry))
    if (!sent) {
      entry.status = 'queued'
      return
    }
    entry.firstSentAt ??= Date.now()
    entry.status = 'pending'
    ackTimers.set(
      entry.clientId,
      setTimeout(() => ackTimedOut(entry.clientId), ACK_TIMEOUT_MS),
    )
  }


  function enqueue(action: Omit<OutgoingAction, 'clientId' | 'createdAt'>) {
    outbox.push({
      ...action,
      clientId: crypto.randomUUID(),
      createdAt: Date.now(),
      status: 'queued',
      error: null,
      retryAfterMs: null,
    })
    flushQueue()
  }


  /** Sends a failed message again, with the same client_id: the server stores it once. */
  function retry(clientId: string) {
    const entry = outbox.find((candidate) => candidate.clientId === clientId)
    if (entry === undefined) return
    // Sent again knowing it may be there already: its window starts now.
    if (entry.error === 'resend_window_passed') delete entry.firstSentAt
    transmit(entry)
  }

  /**
   * After a reconnect: the queue goes, in the order written, each with its client_id (a
   * message whose ack the drop swallowed is stored once, and acked with its first id).
   */
  function resendPending() {
    for (const entry of outbox) {
      if (entry.status !== 'failed') transmit(entry)
    }
  }

  /**
   * The socket dropped: a send without its ack has an unknown outcome, not a failure.
   * It is queued again (no ack timer runs while there is no socket to answer).
   */
  function connectionLost() {
    for (const entry of outbox) {
      if (entry.status !== 'pending') continue
      clearTimeout(ackTimers.get(entry.clientId))
      ackTimers.delete(entry.clientId)
      entry.status = 'queued'
    }
  }

  /** Sends what is queued, oldest first, while the socket is live (a no-op when it is not). */
  function flushQueue() {
    if (connection.state !== 'live') return
    for (const entry of outbox) {
      if (entry.status === 'queued') transmit(entry)
    }
  }

  /**
   * Takes back this tab's queue after a reload (the messages not acknowledged when the
   * page went away), and keeps the stored queue in step with the outbox from now on.
   */
  let persisting = false
  function restoreOutbox(userId: number) {
    if (persisting) return
    persisting = true
    const known = new Set(outbox.map((entry) => entry.clientId))
    for (const stored of loadOutbox(userId)) {
      if (known.has(stored.clientId)) continue
      outbox.push({ ...stored, status: 'queued', error: null, retryAfterMs: null })
    }
    watch(
      () =>
        outbox.map(storedAction),
      (entries) => saveOutbox(userId, entries),
      { immediate: true },
    )
  }

  /** How many messages wait for the socket. */
  const queuedCount = computed(() => outbox.filter((entry) => entry.status === 'queued').length)


  /** Our messages (not changes) still on their way to the room. */
  function pendingIn(room: string): OutgoingMessage[] {
    return outbox.filter((entry) => entry.room === room && kindOf(entry) === 'send')
  }

  return {
    outbox,
    settle,
    fail,
    enqueue,
    retry,
    resendPending,
    connectionLost,
    flushQueue,
    restoreOutbox,
    queuedCount,
    pendingIn,
  }
}
