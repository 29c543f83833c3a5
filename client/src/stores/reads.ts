import { defineStore } from 'pinia'
import { reactive } from 'vue'

import type { Room } from '@/api/types'
import { mentions } from '@/lib/mentions'
import { compareIds } from '@/lib/streamId'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'
import { useSessionStore } from '@/stores/session'

/** A room's read mark goes to the server at most this often (the newest one wins). */
export const READ_REPORT_MS = 1000
/** Past this many unread messages the count shows as "99+". */
export const UNREAD_SHOWN_MAX = 99

export interface RoomReads {
  /** The last message read, on any device (the server's read mark, or ours ahead of it). */
  upTo: string | null
  /** The server's read state for the room has arrived (the room list, or a `read` frame). */
  known: boolean
  /** The server's counts when the room list was loaded: used while the messages we hold
   * do not reach back to the read mark. */
  serverUnread: number
  serverMore: boolean
  serverMentions: number
}

export interface UnreadCount {
  count: number
  /** More than `count`: show "99+". */
  more: boolean
  mentions: number
}

const NONE: UnreadCount = { count: 0, more: false, mentions: 0 }

const newer = (id: string, than: string | null) => than === null || compareIds(id, than) > 0

/**
 * Read state, kept on the server: per room the last message read. Reading a room moves
 * the mark here at once and reports it (over the socket: the first at once, then at most
 * once a second, and whatever is waiting when the page goes away; what could not be sent
 * goes after the next connect); the server passes it to our
 * other tabs and devices (`read` frames). Unread counts come from the messages we hold
 * when they reach back to the mark, otherwise from the server's count in the room list.
 */
export const useReadsStore = defineStore('reads', () => {
  const rooms = reactive<Record<string, RoomReads>>({})
  /** Marks not yet sent to the server, by room. */
  const unsent = new Map<string, string>()
  let reportTimer: ReturnType<typeof setTimeout> | undefined
  let lastReportAt = 0

  const connection = useConnectionStore()
  const messages = useMessagesStore()
  const session = useSessionStore()

  function entry(room: string): RoomReads {
    rooms[room] ??= {
      upTo: null,
      known: false,
      serverUnread: 0,
      serverMore: false,
      serverMentions: 0,
    }
    return rooms[room]
  }

  /** The read state in a room of the room list (or a room event). */
  function fromServer(room: Room) {
    if (!room.joined) return
    const state = entry(room.slug)
    if (room.last_read != null && newer(room.last_read, state.upTo)) state.upTo = room.last_read
    state.serverUnread = room.unread ?? 0
    state.serverMore = room.unread_more ?? false
    state.serverMentions = room.mentions ?? 0
    state.known = true
  }

  /** The user has read the room up to `id` (on this tab): stored, and reported. */
  function markRead(room: string, id: string) {
    const state = entry(room)
    if (!newer(id, state.upTo)) return
    state.upTo = id
    state.known = true
    unsent.set(room, id)
    if (reportTimer !== undefined) return
    // The first mark goes at once, then at most one a second (the newest of the second).
    const wait = lastReportAt + READ_REPORT_MS - Date.now()
    if (wait <= 0) report()
    else reportTimer = setTimeout(report, wait)
  }

  /** Another tab or device of ours read up to `id` (a `read` frame). */
  function synced(room: string, id: string) {
    const state = entry(room)
    if (newer(id, state.upTo)) state.upTo = id
    state.known = true
  }

  /** Sends the marks waiting; those that cannot go now wait for the next connect. */
  function report() {
    clearTimeout(reportTimer)
    reportTimer = undefined
    if (unsent.size > 0) lastReportAt = Date.now()
    for (const [room, id] of unsent) {
      if (!connection.transmit({ type: 'read', room, id })) return
      unsent.delete(room)
    }
  }

  function counted(room: string): UnreadCount {
    const state = rooms[room]
    const timeline = messages.timelines[room]
    if (state === undefined || state.upTo === null || timeline === undefined) return NONE
    const upTo = state.upTo
    const me = session.user
    let count = 0
    let mentioned = 0
    for (let index = timeline.messages.length - 1; index >= 0; index -= 1) {
      const message = timeline.messages[index]!
      if (!newer(message.id, upTo)) break
      if (session.isMe(message.user)) continue
      count += 1
      if (me !== null && mentions(message.body, me.username)) mentioned += 1
    }
    const first = timeline.messages[0]
    const reachesMark =
      timeline.loaded && (!timeline.hasOlder || (first !== undefined && !newer(first.id, upTo)))
    if (reachesMark) return { count: Math.min(count, UNREAD_SHOWN_MAX), more: count > UNREAD_SHOWN_MAX, mentions: mentioned }
    // We hold only the newest messages: the server counted from the mark itself.
    const total = Math.max(count, state.serverUnread)
    return {
      count: Math.min(total, UNREAD_SHOWN_MAX),
      more: state.serverMore || total > UNREAD_SHOWN_MAX,
      mentions: Math.max(mentioned, state.serverMentions),
    }
  }

  /** The first message of others after the read mark (where "New messages" goes). */
  function firstUnread(room: string): string | null {
    const upTo = rooms[room]?.upTo ?? null
    if (upTo === null) return null
    const found = messages.timelines[room]?.messages.find(
      (message) => newer(message.id, upTo) && !session.isMe(message.user),
    )
    return found?.id ?? null
  }

  function forget(room: string) {
    delete rooms[room]
    unsent.delete(room)
  }

  return { rooms, fromServer, markRead, synced, report, counted, firstUnread, forget }
})
