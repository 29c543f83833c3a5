import { defineStore } from 'pinia'
import { computed, reactive, watch } from 'vue'

import { ApiError, api } from '@/api/http'
import type { ClientFrame, Message } from '@/api/types'
import { loadOutbox, saveOutbox } from '@/lib/outboxStorage'
import { Resends } from '@/lib/resends'
import { sendableBody } from '@/lib/rules'
import { compareIds, idTime } from '@/lib/streamId'
import { useConnectionStore } from '@/stores/connection'
import { useReadsStore } from '@/stores/reads'
import { useSessionStore } from '@/stores/session'

/** A send without an ack after this long is shown as failed, with a Retry button. */
export const ACK_TIMEOUT_MS = 10_000
const PAGE_SIZE = 50
/** Pages of newer messages fetched to join a permalink's window to the latest (at most). */
const JOIN_PAGES_MAX = 5
const JOIN_PAGE_SIZE = 200

export interface RoomTimeline {
  /** Oldest first, unique by id. */
  messages: Message[]
  loaded: boolean
  hasOlder: boolean
  loadingOlder: boolean
  /** The room is unknown, or private and we are not a member. */
  missing: boolean
  /**
   * Showing an older window of the room (a permalink far back): the newer messages are not
   * held, and live ones are not added until the user goes back to the latest.
   */
  detached: boolean
}

/**
 * `queued`: written while the socket was down (or sent on a socket that dropped before the
 * ack): it goes, in order and with its client_id, as soon as the socket is back.
 * `pending`: on its way over a live socket. `failed`: the server refused it (or never
 * answered on a live socket), with a Retry button.
 */
export type OutgoingStatus = 'queued' | 'pending' | 'failed'

/** A message of ours the server has not acknowledged yet. */
export interface OutgoingMessage {
  clientId: string
  room: string
  body: string
  /** When the user sent it (epoch ms), for display. */
  createdAt: number
  status: OutgoingStatus
  /** Why it failed: an error code of the contract, or 'timeout'. */
  error: string | null
  retryAfterMs: number | null
}

/** Message history per room, merged from HTTP pages and live frames, and our outbox. */
export const useMessagesStore = defineStore('messages', () => {
  const timelines = reactive<Record<string, RoomTimeline>>({})
  const outbox = reactive<OutgoingMessage[]>([])

  /** Ids per room, for deduplication (not reactive: it mirrors `timelines`). */
  const seen = new Map<string, Set<string>>()
  /**
   * Per room, the id up to which we hold the room's sequence without a hole: the `since`
   * of the next subscribe. It moves only with what the server delivers in order (the
   * `subscribed` of a fresh subscription, then each `message` frame), never with an ack:
   * our own message can be acknowledged before others' earlier ones reach us, and a
   * disconnect in that window must not skip them.
   */
  const resumeFrom = new Map<string, string>()
  /** Rooms whose last subscribe carried `since`: their `subscribed` starts a replay. */
  const resuming = new Set<string>()
  const ackTimers = new Map<string, ReturnType<typeof setTimeout>>()
  const latestLoads = new Map<string, Promise<void>>()

  const connection = useConnectionStore()
  const session = useSessionStore()

  function timeline(room: string): RoomTimeline {
    timelines[room] ??= {
      messages: [],
      loaded: false,
      hasOlder: false,
      loadingOlder: false,
      missing: false,
      detached: false,
    }
    return timelines[room]
  }

  function lastId(room: string): string | null {
    return timelines[room]?.messages.at(-1)?.id ?? null
  }

  /** The subscribe frame for a room: with `since`, the server sends what we missed. */
  function subscribeFrame(room: string): ClientFrame {
    const since = resumeFrom.get(room)
    if (since === undefined) {
      resuming.delete(room)
      return { type: 'subscribe', room }
    }
    resuming.add(room)
    return { type: 'subscribe', room, since }
  }

  /** `subscribed`: a fresh subscription delivers everything after `lastId`; a resumed
   * one replays from its `since` first, so the resume point stays where it was. */
  function subscribed(room: string, lastId: string | null) {
    if (resuming.delete(room)) return
    if (lastId !== null) resumeFrom.set(room, lastId)
  }

  function advance(room: string, id: string) {
    const current = resumeFrom.get(room)
    if (current === undefined || compareIds(id, current) > 0) resumeFrom.set(room, id)
  }

  /** Merges messages into a room's timeline in id order, skipping ids already there. */
  function merge(room: string, incoming: Message[]) {
    const ids = seen.get(room) ?? new Set<string>()
    seen.set(room, ids)
    const fresh = incoming.filter((message) => {
      if (ids.has(message.id)) return false
      ids.add(message.id)
      return true
    })
    if (fresh.length === 0) return
    const { messages } = timeline(room)
    fresh.sort((a, b) => compareIds(a.id, b.id))
    const newest = messages.at(-1)
    messages.push(...fresh)
    if (newest !== undefined && compareIds(fresh[0]!.id, newest.id) < 0) {
      messages.sort((a, b) => compareIds(a.id, b.id))
    }
  }

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

  /** A `message` frame: live, or missed while we were away; in the room's order. */
  function receive(message: Message) {
    advance(message.room, message.id)
    if (!timelines[message.room]?.detached) merge(message.room, [message])
    if (message.client_id && session.user && session.isMe(message.user)) settle(message.client_id)
  }

  /** The server took our message: it is in the stream under `id`. */
  function acknowledge(clientId: string, id: string) {
    const entry = outbox.find((candidate) => candidate.clientId === clientId)
    if (entry === undefined) return
    if (session.user && !timelines[entry.room]?.detached) {
      merge(entry.room, [
        {
          id,
          room: entry.room,
          user: session.user,
          body: entry.body,
          created_at: idTime(id).toISOString(),
          client_id: clientId,
        },
      ])
    }
    settle(clientId)
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

  /** Sends an entry over the live socket (pending, with an ack timer), or queues it. */
  function transmit(entry: OutgoingMessage) {
    entry.error = null
    entry.retryAfterMs = null
    clearTimeout(ackTimers.get(entry.clientId))
    ackTimers.delete(entry.clientId)
    const sent =
      connection.state === 'live' &&
      connection.transmit({
        type: 'send',
        room: entry.room,
        body: entry.body,
        client_id: entry.clientId,
      })
    if (!sent) {
      entry.status = 'queued'
      return
    }
    entry.status = 'pending'
    ackTimers.set(
      entry.clientId,
      setTimeout(() => ackTimedOut(entry.clientId), ACK_TIMEOUT_MS),
    )
  }

  /**
   * Sends a message, or queues it while the socket is down; it shows as pending (or queued)
   * until its ack. False if the body is not sendable.
   */
  function send(room: string, body: string): boolean {
    const sendable = sendableBody(body, session.messageMaxChars)
    if (sendable === null) return false
    // Written while reading an older window: back to the latest, where it will show.
    if (timelines[room]?.detached) void backToLatest(room)
    outbox.push({
      clientId: crypto.randomUUID(),
      room,
      body: sendable,
      createdAt: Date.now(),
      status: 'queued',
      error: null,
      retryAfterMs: null,
    })
    flushQueue()
    markRead(room)
    return true
  }

  /** Sends a failed message again, with the same client_id: the server stores it once. */
  function retry(clientId: string) {
    const entry = outbox.find((candidate) => candidate.clientId === clientId)
    if (entry !== undefined) transmit(entry)
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
      () => outbox.map(({ clientId, room, body, createdAt }) => ({ clientId, room, body, createdAt })),
      (entries) => saveOutbox(userId, entries),
      { immediate: true },
    )
  }

  /** How many messages wait for the socket. */
  const queuedCount = computed(() => outbox.filter((entry) => entry.status === 'queued').length)

  /** Loads the newest page of a room (once at a time) and merges it in. */
  function loadLatest(room: string): Promise<void> {
    const running = latestLoads.get(room)
    if (running !== undefined) return running
    const load = fetchLatest(room).finally(() => latestLoads.delete(room))
    latestLoads.set(room, load)
    return load
  }

  async function fetchLatest(room: string) {
    const state = timeline(room)
    try {
      const page = await api.latestMessages(room, PAGE_SIZE)
      if (!state.loaded) state.hasOlder = page.has_more
      merge(room, page.messages)
      state.loaded = true
      state.missing = false
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) state.missing = true
      else throw error
    }
  }

  async function loadOlder(room: string) {
    const state = timeline(room)
    const oldest = state.messages[0]
    if (!state.hasOlder || state.loadingOlder || oldest === undefined) return
    state.loadingOlder = true
    try {
      const page = await api.messagesBefore(room, oldest.id, PAGE_SIZE)
      merge(room, page.messages)
      state.hasOlder = page.has_more
    } finally {
      state.loadingOlder = false
    }
  }

  /** Whether the room's timeline holds this message. */
  function holds(room: string, id: string): boolean {
    return seen.get(room)?.has(id) === true
  }

  /**
   * Loads the messages around `id` (a search result, a permalink) into the room's timeline;
   * false when the room has no such message. A window near the latest is joined to it with
   * pages of newer messages, so the timeline stays without a hole; one further back is
   * shown alone (`detached`) until `backToLatest`.
   */
  async function loadAround(room: string, id: string): Promise<boolean> {
    const state = timeline(room)
    if (!state.loaded) await loadLatest(room)
    if (holds(room, id)) return true
    let page
    try {
      page = await api.messagesAround(room, id, PAGE_SIZE)
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return false
      throw error
    }
    const batches = [page.messages]
    let newest = page.messages.at(-1)?.id ?? id
    let more = page.has_newer
    // What the window must reach to join the timeline (a detached one is replaced).
    const heldOldest = state.detached ? undefined : state.messages[0]?.id
    const reached = () => heldOldest !== undefined && compareIds(newest, heldOldest) >= 0
    for (let n = 0; more && !reached() && n < JOIN_PAGES_MAX; n++) {
      const next = await api.messagesAfter(room, newest, JOIN_PAGE_SIZE)
      batches.push(next.messages)
      newest = next.messages.at(-1)?.id ?? newest
      more = next.has_more
    }
    const joined = !more || reached()
    const pageOldest = page.messages[0]?.id
    const replacing = state.detached || !joined
    if (replacing) {
      state.messages.splice(0)
      seen.delete(room)
    }
    if (replacing || heldOldest === undefined || (pageOldest && compareIds(pageOldest, heldOldest) < 0)) {
      state.hasOlder = page.has_more
    }
    merge(room, batches.flat())
    state.detached = !joined
    return true
  }

  /** Leaves an older window for the room's latest messages. */
  async function backToLatest(room: string) {
    const state = timeline(room)
    if (!state.detached) return
    state.messages.splice(0)
    seen.delete(room)
    state.loaded = false
    state.detached = false
    await loadLatest(room)
  }

  /**
   * The server lost the room's stream: what we hold may not match it any more. Start the
   * room afresh: a new subscription without `since` (its `subscribed` sets the resume
   * point) and the latest page over HTTP.
   */
  async function resync(room: string) {
    const state = timeline(room)
    state.messages.splice(0)
    state.loaded = false
    seen.delete(room)
    resumeFrom.delete(room)
    connection.transmit(subscribeFrame(room))
    await loadLatest(room)
  }

  /** The user has seen the newest message of the room (read state: stores/reads.ts). */
  function markRead(room: string) {
    const newest = lastId(room)
    if (newest !== null) useReadsStore().markRead(room, newest)
  }

  /** Messages of others after the read mark (at most 99: see `useReadsStore().counted`). */
  function unreadCount(room: string): number {
    return useReadsStore().counted(room).count
  }

  function pendingIn(room: string): OutgoingMessage[] {
    return outbox.filter((entry) => entry.room === room)
  }

  /** Drops a room we left: a later visit starts from a fresh history page. */
  function forget(room: string) {
    delete timelines[room]
    seen.delete(room)
    resumeFrom.delete(room)
    resuming.delete(room)
  }

  return {
    timelines,
    outbox,
    timeline,
    lastId,
    subscribeFrame,
    subscribed,
    receive,
    acknowledge,
    fail,
    send,
    retry,
    resendPending,
    connectionLost,
    queuedCount,
    restoreOutbox,
    loadLatest,
    loadOlder,
    loadAround,
    backToLatest,
    holds,
    resync,
    markRead,
    unreadCount,
    pendingIn,
    forget,
  }
})
