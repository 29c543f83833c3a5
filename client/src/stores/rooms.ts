import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import { ApiError, api } from '@/api/http'
import type { Room } from '@/api/types'
import { rememberRoom } from '@/lib/landing'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'
import { usePresenceStore } from '@/stores/presence'
import { useSessionStore } from '@/stores/session'

/** Members shown per page in a room's member list. */
export const MEMBERS_PAGE = 50

const byTitle = (a: Room, b: Room) => a.title.localeCompare(b.title) || a.slug.localeCompare(b.slug)

/**
 * The rooms the user can see, and the ones they joined. Membership is the server's (so a
 * user's rooms follow them to every device): opening a room joins it there, leaving leaves
 * it there. Joined rooms, and the room on screen, stay subscribed (for unread counts) and
 * are subscribed again after every reconnect.
 */
export const useRoomsStore = defineStore('rooms', () => {
  const rooms = ref<Room[]>([])
  const active = ref<string | null>(null)
  /** The active room does not exist, or is private and we are not a member. */
  const activeMissing = ref(false)

  /** The rooms we asked the server for, over this socket or the next one. */
  const subscribed = new Set<string>()
  /** Rooms whose leave is on its way: not subscribed again meanwhile. */
  const leaving = new Set<string>()

  const connection = useConnectionStore()
  const messages = useMessagesStore()
  const presence = usePresenceStore()
  const session = useSessionStore()

  const joined = computed(() => rooms.value.filter((room) => room.joined).map((room) => room.slug))
  /** The sidebar: the rooms the server says we joined. */
  const joinedRooms = computed(() => rooms.value.filter((room) => room.joined).sort(byTitle))
  /** Public rooms we have not joined: opening one joins it. */
  const otherRooms = computed(() => rooms.value.filter((room) => !room.joined).sort(byTitle))
  const activeRoom = computed(() => rooms.value.find((room) => room.slug === active.value) ?? null)

  const find = (slug: string) => rooms.value.find((room) => room.slug === slug)
  const isJoined = (slug: string) => find(slug)?.joined === true

  /** Subscribes what we joined or look at; unsubscribes and forgets the rest. */
  function reconcile() {
    const wanted = new Set(joined.value)
    if (active.value !== null && !activeMissing.value) wanted.add(active.value)
    for (const slug of leaving) wanted.delete(slug)
    for (const slug of subscribed) {
      if (!wanted.has(slug)) drop(slug, true)
    }
    for (const slug of wanted) {
      if (subscribed.has(slug)) continue
      subscribed.add(slug)
      connection.transmit(messages.subscribeFrame(slug))
    }
  }

  /** `tellServer` is false for a room we can no longer see at all. */
  function drop(slug: string, tellServer: boolean) {
    subscribed.delete(slug)
    if (tellServer) connection.transmit({ type: 'unsubscribe', room: slug })
    messages.forget(slug)
    presence.forget(slug)
  }

  /** What to subscribe again on a new socket. */
  function subscriptions(): string[] {
    return [...subscribed]
  }

  /** Loads the rooms we can see and our membership, on this device or any other. */
  async function load() {
    rooms.value = (await api.rooms()).rooms
    const visible = new Set(rooms.value.map((room) => room.slug))
    for (const slug of subscribed) {
      if (!visible.has(slug) && slug !== active.value) drop(slug, false)
    }
    reconcile()
  }

  function upsert(room: Room) {
    const index = rooms.value.findIndex((candidate) => candidate.slug === room.slug)
    if (index >= 0) rooms.value[index] = room
    else rooms.value.push(room)
  }

  /** Becomes a member on the server; a 404 (unknown, or private) is left to the caller. */
  async function join(slug: string) {
    await api.joinRoom(slug)
    const known = find(slug)
    if (known !== undefined) known.joined = true
    else upsert((await api.room(slug)).room)
    reconcile()
  }

  /**
   * Leaves on the server (every device of ours leaves with it). Unsubscribed first: the
   * server then has no subscription of ours to end with a `forbidden` frame, which is the
   * notice for losing a private room, not for leaving it.
   */
  async function leave(slug: string) {
    leaving.add(slug)
    reconcile()
    try {
      await api.leaveRoom(slug)
      left(slug)
    } catch (error) {
      // Gone, or private and lost already: the outcome we wanted.
      if (!(error instanceof ApiError && error.status === 404)) throw error
      left(slug)
    } finally {
      leaving.delete(slug)
      reconcile() // a refused leave: subscribed again
    }
  }

  function left(slug: string) {
    const room = find(slug)
    // Leaving a private room ends our access to it.
    if (room !== undefined && !room.private) room.joined = false
    else rooms.value = rooms.value.filter((candidate) => candidate.slug !== slug)
  }

  /** The room shown in the main pane (from the route); opening a room joins it. */
  async function open(slug: string | null) {
    active.value = slug
    activeMissing.value = false
    reconcile()
    if (slug === null) return
    try {
      if (!isJoined(slug)) await join(slug)
      if (session.user !== null) rememberRoom(session.user.id, slug) // where to land next time
      if (!messages.timelines[slug]?.loaded) await messages.loadLatest(slug)
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error
    }
    if (!isJoined(slug) || messages.timelines[slug]?.missing) missing(slug)
  }

  function missing(slug: string) {
    rooms.value = rooms.value.filter((room) => room.slug !== slug)
    if (subscribed.has(slug)) drop(slug, false)
    if (active.value === slug) activeMissing.value = true
  }

  async function create(slug: string, title: string, isPrivate: boolean): Promise<Room> {
    const { room } = await api.createRoom(slug, title, isPrivate)
    upsert(room)
    return room
  }

  /** The online count of a room, kept in step with presence frames for subscribed rooms;
   * 0 (shown as nothing) while the socket is down and the count is unknown. */
  function onlineCount(room: Room): number {
    if (connection.state === 'reconnecting' || !presence.known(room.slug)) return 0
    return presence.online[room.slug]?.length ?? room.online
  }

  /** A page of the room's members, by username, after `after` (null: the first page). */
  const members = (slug: string, after: string | null = null) =>
    api.members(slug, after, MEMBERS_PAGE)
  const addMember = (slug: string, username: string) => api.addMember(slug, username)
  const removeMember = (slug: string, username: string) => api.removeMember(slug, username)

  return {
    rooms,
    joined,
    active,
    activeMissing,
    joinedRooms,
    otherRooms,
    activeRoom,
    subscriptions,
    load,
    join,
    leave,
    open,
    create,
    onlineCount,
    members,
    addMember,
    removeMember,
  }
})
