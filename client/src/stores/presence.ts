import { defineStore } from 'pinia'
import { reactive } from 'vue'

import type { User } from '@/api/types'
import { useConnectionStore } from '@/stores/connection'
import { useSessionStore } from '@/stores/session'

/** How long "X is typing" stays after a typing frame. */
export const TYPING_SHOWN_MS = 5_000
/** We tell the room we are typing at most this often. */
export const TYPING_THROTTLE_MS = 3_000

/** Who is in each room right now, and who is typing there. */
export const usePresenceStore = defineStore('presence', () => {
  const online = reactive<Record<string, User[]>>({})
  const typing = reactive<Record<string, User[]>>({})
  /**
   * Rooms whose online list is out of date: the socket dropped, so joins and leaves are not
   * reaching us. The list is kept but shown as unknown until the room's next `subscribed`.
   */
  const stale = reactive<Record<string, boolean>>({})

  const typingTimers = new Map<string, ReturnType<typeof setTimeout>>()
  const lastTypingSent = new Map<string, number>()

  const connection = useConnectionStore()
  const session = useSessionStore()

  /** The `online` list of a `subscribed` frame: the full picture at that moment. */
  function setOnline(room: string, users: User[]) {
    const unique = new Map(users.map((user) => [user.id, user]))
    online[room] = [...unique.values()]
    delete stale[room]
  }

  /** The socket dropped: every room's online list is unknown until it is subscribed again. */
  function markUnknown() {
    for (const room of Object.keys(online)) stale[room] = true
    for (const room of Object.keys(typing)) {
      for (const user of typing[room] ?? []) stopTyping(room, user)
    }
  }

  /** Whether the room's online list is up to date (false while the socket is down). */
  const known = (room: string) => stale[room] !== true

  /** A join; the same user again (another tab, a reconnect) may carry a new display name. */
  function join(room: string, user: User) {
    const users = online[room] ?? []
    const index = users.findIndex((other) => other.id === user.id)
    if (index < 0) online[room] = [...users, user]
    else if (users[index]!.display_name !== user.display_name) {
      online[room] = users.map((other) => (other.id === user.id ? user : other))
    }
  }

  function leave(room: string, user: User) {
    online[room] = (online[room] ?? []).filter((other) => other.id !== user.id)
    stopTyping(room, user)
  }

  function startTyping(room: string, user: User) {
    if (session.isMe(user)) return
    const key = `${room}\n${user.id}`
    const users = typing[room] ?? []
    if (!users.some((other) => other.id === user.id)) typing[room] = [...users, user]
    clearTimeout(typingTimers.get(key))
    typingTimers.set(
      key,
      setTimeout(() => stopTyping(room, user), TYPING_SHOWN_MS),
    )
  }

  /** Their typing ends when it times out, when their message arrives, or when they leave. */
  function stopTyping(room: string, user: User) {
    const key = `${room}\n${user.id}`
    clearTimeout(typingTimers.get(key))
    typingTimers.delete(key)
    const users = typing[room]
    if (users?.some((other) => other.id === user.id)) {
      typing[room] = users.filter((other) => other.id !== user.id)
    }
  }

  /** The user typed in the composer; tells the room, at most once per 3 s. */
  function notifyTyping(room: string, now: number = Date.now()) {
    const last = lastTypingSent.get(room)
    if (last !== undefined && now - last < TYPING_THROTTLE_MS) return
    if (connection.transmit({ type: 'typing', room })) lastTypingSent.set(room, now)
  }

  function forget(room: string) {
    delete online[room]
    delete stale[room]
    for (const user of typing[room] ?? []) stopTyping(room, user)
    delete typing[room]
  }

  return {
    online,
    typing,
    stale,
    known,
    markUnknown,
    setOnline,     join,
    leave,
    startTyping,
    stopTyping,
    notifyTyping,
    forget,
  }
})
