import { defineStore } from 'pinia'
import { reactive } from 'vue'

import { ApiError, api } from '@/api/http'
import type { ClientFrame, Message } from '@/api/types'
import { Resends } from '@/lib/resends'
import { sendableBody } from '@/lib/rules'
import { compareIds, idTime } from '@/lib/streamId'
import { useConnectionStore } from '@/stores/connection'
import { useSessionStore } from '@/stores/session'

/** A send without an ack after this long is shown as failed, with a Retry button. */
export const ACK_TIMEOUT_MS = 10_000
const PAGE_SIZE = 50

export interface RoomTimeline {
  /** Oldest first, unique by id. */
  messages: Message[]
  loaded: boolean
  hasOlder: boolean
  loadingOlder: boolean
  /** The room is unknown, or private and we are not a member. */
  missing: boolean
  /** The newest id the user has seen; newer messages of others are unread. */
  readUpTo: string | null
}

export type OutgoingStatus = 'pending' | 'failed'

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
      readUpTo: null,
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
    resends.settle(clientId)
    clearTimeout(ackTimers.get(clientId))
    ackTimers.delete(clientId)
    const index = outbox.findIndex((entry) => entry.clientId === clientId)
    if (index >= 0) outbox.splice(index, 1)
  }

  /** A `message` frame: live, or missed while we were away; in the room's order. */
  function receive(message: Message) {
    advance(message.room, message.id)
    merge(message.room, [message])
    if (message.client_id && session.user && session.isMe(message.user)) settle(message.client_id)
  }

  /** The server took our message: it is in the stream under `id`. */
  function acknowledge(clientId: string, id: string) {
    const entry = outbox.find((candidate) => candidate.clientId === clientId)
    if (entry === undefined) return
    if (session.user) {
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

  function transmit(entry: OutgoingMessage) {
    entry.status = 'pending'
    entry.error = null
    entry.retryAfterMs = null
    clearTimeout(ackTimers.get(entry.clientId))
    ackTimers.set(
      entry.clientId,
      setTimeout(() => fail(entry.clientId, 'timeout'), ACK_TIMEOUT_MS),
    )
    connection.transmit({
      type: 'send',
      room: entry.room,
      body: entry.body,
      client_id: entry.clientId,
    })
  }

  /** Queues a message; it shows as pending until its ack. False if the body is not sendable. */
  function send(room: string, body: string): boolean {
    const sendable = sendableBody(body, session.messageMaxChars)
    if (sendable === null) return false
    outbox.push({
      clientId: crypto.randomUUID(),
      room,
      body: sendable,
      createdAt: Date.now(),
      status: 'pending',
      error: null,
      retryAfterMs: null,
    })
    transmit(outbox.at(-1)!)
    markRead(room)
    return true
  }

  /** Sends a failed message again, with the same client_id: the server stores it once. */
  function retry(clientId: string) {
    const entry = outbox.find((candidate) => candidate.clientId === clientId)
    if (entry !== undefined) transmit(entry)
  }

  /** After a reconnect: messages still waiting for an ack go again (same client_id). */
  function resendPending() {
    for (const entry of outbox) {
      if (entry.status === 'pending') {
        connection.transmit({
          type: 'send',
          room: entry.room,
          body: entry.body,
          client_id: entry.clientId,
        })
      }
    }
  }

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
      state.readUpTo ??= lastId(room)
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

  function markRead(room: string) {
    const newest = lastId(room)
    if (newest !== null) timeline(room).readUpTo = newest
  }

  /** Messages of others newer than what the user has seen. */
  function unreadCount(room: string): number {
    const state = timelines[room]
    if (state === undefined) return 0
    const readUpTo = state.readUpTo
    let count = 0
    for (let index = state.messages.length - 1; index >= 0; index -= 1) {
      const message = state.messages[index]!
      if (readUpTo !== null && compareIds(message.id, readUpTo) <= 0) break
      if (!session.isMe(message.user)) count += 1
    }
    return count
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
    loadLatest,
    loadOlder,
    resync,
    markRead,
    unreadCount,
    pendingIn,
    forget,
  }
})
