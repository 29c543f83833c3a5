import { defineStore } from 'pinia'
import { reactive } from 'vue'

import { ApiError, api } from '@/api/http'
import type { ClientFrame, Message, MessageChange } from '@/api/types'
import { applyToRoom, mergeState, reactedWith, replyPreview } from '@/lib/messageChanges'
import { type OutgoingKind, kindOf, pendingReaction } from '@/lib/outgoing'
import { sendableBody } from '@/lib/rules'
import { compareIds, idTime } from '@/lib/streamId'
import { useConnectionStore } from '@/stores/connection'
import { createOutbox } from '@/stores/outbox'
import { useReadsStore } from '@/stores/reads'
import { useSessionStore } from '@/stores/session'

export { ACK_TIMEOUT_MS } from '@/stores/outbox'
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

export type { OutgoingMessage, OutgoingStatus } from '@/lib/outgoing'

/** Message history per room, merged from HTTP pages and live frames, and our outbox. */
export const useMessagesStore = defineStore('messages', () => {
  const timelines = reactive<Record<string, RoomTimeline>>({})

  /** Ids per room (of messages, and of the changes applied), for deduplication (not
   * reactive: it mirrors `timelines`). */
  const seen = new Map<string, Set<string>>()
  /**
   * Per room, the id up to which we hold the room's sequence without a hole: the `since`
   * of the next subscribe. It moves only with what the server delivers in order (the
   * `subscribed` of a fresh subscription, then each `message` frame and each change frame:
   * edit, delete, react, unreact have stream ids of their own), never with an ack:
   * our own message can be acknowledged before others' earlier ones reach us, and a
   * disconnect in that window must not skip them.
   */
  const resumeFrom = new Map<string, string>()
  /** Rooms whose last subscribe carried `since`: their `subscribed` starts a replay. */
  const resuming = new Set<string>()
  const latestLoads = new Map<string, Promise<void>>()

  const connection = useConnectionStore()
  const session = useSessionStore()
  const {
    outbox,
    settle,
    fail,
    enqueue,
    retry,
    resendPending,
    connectionLost,
    restoreOutbox,
    queuedCount,
    pendingIn,
  } = createOutbox()

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

  function seenIn(room: string): Set<string> {
    const ids = seen.get(room) ?? new Set<string>()
    seen.set(room, ids)
    return ids
  }

  /**
   * Merges messages into a room's timeline in id order. A message already there takes the
   * state of the incoming copy (a history page: its edits, delete, reactions) unless what
   * we hold is newer.
   */
  function merge(room: string, incoming: Message[]) {
    settleOurs(incoming)
    const ids = seenIn(room)
    const { messages } = timeline(room)
    const fresh = incoming.filter((message) => {
      if (!ids.has(message.id)) {
        ids.add(message.id)
        return true
      }
      const held = messages.find((candidate) => candidate.id === message.id)
      if (held !== undefined) mergeState(held, message)
      return false
    })
    if (fresh.length === 0) return
    fresh.sort((a, b) => compareIds(a.id, b.id))
    const newest = messages.at(-1)
    messages.push(...fresh)
    if (newest !== undefined && compareIds(fresh[0]!.id, newest.id) < 0) {
      messages.sort((a, b) => compareIds(a.id, b.id))
    }
  }


  /**
   * Our messages that reached the room are no longer on their way, however we learn it: a
   * live copy before the ack, or a history page after a reload that lost the ack.
   */
  function settleOurs(incoming: Message[]) {
    if (outbox.length === 0 || session.user === null) return
    for (const message of incoming) {
      if (message.client_id && session.isMe(message.user)) settle(message.client_id)
    }
  }

  /** A `message` frame: live, or missed while we were away; in the room's order. */
  function receive(message: Message) {
    advance(message.room, message.id)
    if (timelines[message.room]?.detached) settleOurs([message])
    else merge(message.room, [message])
  }

  /** Applies a change once (by its id) to the room's messages that it concerns. */
  function apply(change: MessageChange) {
    const ids = seenIn(change.room)
    if (ids.has(change.id)) return
    ids.add(change.id)
    const mine = session.user !== null && session.isMe(change.user)
    applyToRoom(timeline(change.room).messages, change, mine)
  }

  /** An edit, delete, react or unreact frame: live, or missed while we were away. */
  function receiveChange(change: MessageChange) {
    advance(change.room, change.id)
    apply(change)
    if (change.client_id && session.user && session.isMe(change.user)) settle(change.client_id)
  }

  /** The server took our message (or change): it is in the stream under `id`. */
  function acknowledge(clientId: string, id: string) {
    const entry = outbox.find((candidate) => candidate.clientId === clientId)
    if (entry === undefined) return
    const user = session.user
    const kind = kindOf(entry)
    const createdAt = idTime(id).toISOString()
    if (user !== null && kind === 'send' && !timelines[entry.room]?.detached) {
      const quoted = timeline(entry.room).messages.find((message) => message.id === entry.replyTo)
      merge(entry.room, [
        {
          id,
          room: entry.room,
          user,
          body: entry.body,
          created_at: createdAt,
          client_id: clientId,
          edited_at: null,
          deleted: false,
          reactions: [],
          reply_to: entry.replyTo ?? null,
          reply: quoted === undefined ? null : replyPreview(quoted),
        },
      ])
    } else if (user !== null && entry.target !== undefined) {
      const { room, target, body, emoji } = entry
      apply({ type: kind as Exclude<OutgoingKind, 'send'>, id, room, target, user, body, emoji, created_at: createdAt })
    }
    settle(clientId)
  }

  /**
   * Sends a message, or queues it while the socket is down; it shows as pending (or queued)
   * until its ack. False if the body is not sendable.
   */
  function send(room: string, body: string, replyTo?: string): boolean {
    const sendable = sendableBody(body, session.messageMaxChars)
    if (sendable === null) return false
    // Written while reading an older window: back to the latest, where it will show.
    if (timelines[room]?.detached) void backToLatest(room)
    enqueue({ room, body: sendable, ...(replyTo === undefined ? {} : { replyTo }) })
    markRead(room)
    return true
  }

  /** A new body for one of our messages; false if it is not sendable. */
  function edit(message: Message, body: string): boolean {
    const sendable = sendableBody(body, session.messageMaxChars)
    if (sendable === null) return false
    if (sendable !== message.body) {
      enqueue({ kind: 'edit', room: message.room, target: message.id, body: sendable })
    }
    return true
  }

  /** Deletes a message (ours; or anyone's as the room owner or an admin, with a reason). */
  function remove(message: Message, reason = '') {
    const why = reason.trim()
    enqueue({ kind: 'delete', room: message.room, target: message.id, body: '', ...(why ? { reason: why } : {}) })
  }

  /** Whether our reaction with `emoji` is on (or on its way). */
  function reacted(message: Message, emoji: string): boolean {
    const pending = pendingReaction(outbox, message.id, emoji)
    return pending === null ? reactedWith(message, emoji) : pending === 'react'
  }

  /** Adds our reaction with `emoji`, or takes it back. */
  function toggleReaction(message: Message, emoji: string) {
    const kind = reacted(message, emoji) ? 'unreact' : 'react'
    enqueue({ kind, room: message.room, target: message.id, body: '', emoji })
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
    receiveChange,
    acknowledge,
    fail,
    send,
    edit,
    remove,
    reacted,
    toggleReaction,
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
