import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import { ApiError, api } from '@/api/http'
import type { Room, RoomEventKind, RoomPage } from '@/api/types'
import { rememberRoom } from '@/lib/landing'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'
import { usePresenceStore } from '@/stores/presence'
import { useReadsStore } from '@/stores/reads'
import { useSessionStore } from '@/stores/session'

/** Members shown per page in a room's member list. */
export const MEMBERS_PAGE = 50
/** Rooms per page of the sidebar's load, and of the room directory's. */
export const JOINED_PAGE = 200
export const DIRECTORY_PAGE = 50

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
  /** The last room the server took from us while we may have been in it (the view
   * closes it): a removal, or leaving it on another device. */
  const closed = ref<{ slug: string } | null>(null)

  /** The rooms we asked the server for, over this socket or the next one. */
  const subscribed = new Set<string>()
  /** Rooms whose leave is on its way: not subscribed again meanwhile. */
  const leaving = new Set<string>()

  const connection = useConnectionStore()
  const messages = useMessagesStore()
  const presence = usePresenceStore()
  const reads = useReadsStore()
  const session = useSessionStore()

  const joined = computed(() => rooms.value.filter((room) => room.joined).map((room) => room.slug))
  /** The sidebar: the rooms the server says we joined (direct conversations apart). */
  const joinedRooms = computed(() =>
    rooms.value.filter((room) => room.joined && room.kind !== 'dm').sort(byTitle),
  )
  /** The sidebar's "Direct messages": our conversations, by their people's names. */
  const conversations = computed(() =>
    rooms.value
      .filter((room) => room.joined && room.kind === 'dm')
      .sort((a, b) => conversationTitle(a).localeCompare(conversationTitle(b))),
  )
  /** Counts the public rooms created since the page loaded (`room` frames): an open
   * directory asks the server again, so a new room shows up without a reload. */
  const directoryChanged = ref(0)
  const activeRoom = computed(() => rooms.value.find((room) => room.slug === active.value) ?? null)

  /** A conversation is named by its other people (as they are called now). */
  function conversationTitle(room: Room): string {
    const others = (room.members ?? []).filter((member) => !session.isMe(member))
    return others.length > 0 ? others.map((member) => member.display_name).join(', ') : room.title
  }

  /** What the room is called: a conversation by its people, a room by its title. */
  const titleOf = (room: Room) => (room.kind === 'dm' ? conversationTitle(room) : room.title)

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
    reads.forget(slug)
  }

  /** What to subscribe again on a new socket. */
  function subscriptions(): string[] {
    return [...subscribed]
  }

  /** Loads the rooms we joined, on this device or any other (every page of them). */
  async function load() {
    const found: Room[] = []
    let cursor: string | null = null
    do {
      const page: RoomPage = await api.rooms({ joined: true, cursor, limit: JOINED_PAGE })
      found.push(...page.rooms)
      cursor = page.next_cursor ?? null
    } while (cursor !== null)
    rooms.value = found
    for (const room of rooms.value) reads.fromServer(room)
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
    reads.fromServer(room)
  }

  /** A `room` frame: the server changed our rooms (on any device, or the owner did). */
  function roomEvent(event: RoomEventKind, room: Room) {
    const known = find(room.slug)
    switch (event) {
      case 'created': // a new public room: the directory shows it, not the sidebar
        directoryChanged.value += 1
        break
      case 'joined':
      case 'added':
        upsert({ ...known, ...room, joined: true })
        reconcile()
        break
      case 'left':
        if (known?.joined !== true || leaving.has(room.slug)) break
        left(room.slug)
        if (active.value === room.slug) closed.value = { slug: room.slug }
        reconcile()
        break
      case 'removed':
        removed(room.slug)
        break
    }
  }

  /** We are no longer a member of a private room (the owner removed us): it goes, and
   * we are told once, whether by its `room` frame or by the end of its subscription. */
  function removed(slug: string) {
    const room = find(slug)
    if (room === undefined) return
    rooms.value = rooms.value.filter((candidate) => candidate.slug !== slug)
    if (subscribed.has(slug)) drop(slug, false)
    connection.showNotice({ code: 'removed_from_room', message: room.title, retryAfterMs: null })
    if (active.value === slug) closed.value = { slug }
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

  /** A room we left leaves the sidebar; a public one is in the directory to join again. */
  function left(slug: string) {
    rooms.value = rooms.value.filter((candidate) => candidate.slug !== slug)
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

  /** Starts a direct conversation with these people, or finds it again: its slug. */
  async function startConversation(usernames: string[]): Promise<string> {
    const { room } = await api.startConversation(usernames)
    upsert({ ...find(room.slug), ...room })
    reconcile()
    return room.slug
  }

  async function create(slug: string, title: string, isPrivate: boolean): Promise<Room> {
    const { room } = await api.createRoom(slug, title, isPrivate)
    upsert(room)
    return room
  }

  /**
   * The server refused a subscribe for now (`rate_limited`): ask again after the wait, if
   * the room is still wanted. The refusal may have been of another frame of the room (a
   * typing one): subscribing again costs one frame and restarts nothing we hold.
   */
  function subscribeLater(slug: string, retryAfterMs: number) {
    setTimeout(() => {
      if (!subscribed.has(slug)) return
      subscribed.delete(slug)
      reconcile()
    }, retryAfterMs)
  }

  /** A page of the room directory: public rooms (and private ones we are in), by slug. */
  const directory = (q: string, cursor: string | null = null) =>
    api.rooms({ q: q.trim() || undefined, cursor, limit: DIRECTORY_PAGE })

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
    closed,
    roomEvent,
    removed,
    joinedRooms,
    conversations,
    directoryChanged,
    titleOf,
    startConversation,
    activeRoom,
    subscriptions,
    load,
    join,
    leave,
    open,
    create,
    isJoined,
    subscribeLater,
    directory,
    onlineCount,
    members,
    addMember,
    removeMember,
  }
})
