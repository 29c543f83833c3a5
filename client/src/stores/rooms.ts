import { defineStore } from 'pinia'
import { computed, ref, watch } from 'vue'

import { api } from '@/api/http'
import type { Room } from '@/api/types'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'
import { usePresenceStore } from '@/stores/presence'
import { useSessionStore } from '@/stores/session'

const joinedKey = (username: string) => `chatroom.joined.${username}`

function readJoined(username: string | undefined): string[] {
  if (username === undefined) return []
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(joinedKey(username)) ?? '[]')
    return Array.isArray(stored) ? stored.filter((slug) => typeof slug === 'string') : []
  } catch {
    return []
  }
}

/**
 * The rooms the user can see, and the ones they joined: joined rooms stay subscribed (for
 * unread counts) and are subscribed again after every reconnect.
 */
export const useRoomsStore = defineStore('rooms', () => {
  const rooms = ref<Room[]>([])
  const joined = ref<string[]>([])
  const active = ref<string | null>(null)
  /** The active room does not exist, or is private and we are not a member. */
  const activeMissing = ref(false)

  const session = useSessionStore()
  const connection = useConnectionStore()
  const messages = useMessagesStore()
  const presence = usePresenceStore()

  const sortedRooms = computed(() =>
    [...rooms.value].sort((a, b) => a.title.localeCompare(b.title) || a.slug.localeCompare(b.slug)),
  )
  const activeRoom = computed(() => rooms.value.find((room) => room.slug === active.value) ?? null)

  watch(
    () => session.user?.username,
    (username) => {
      joined.value = readJoined(username)
    },
    { immediate: true },
  )

  function persistJoined() {
    const username = session.user?.username
    if (username !== undefined) {
      localStorage.setItem(joinedKey(username), JSON.stringify(joined.value))
    }
  }

  /** Loads the rooms we can see, and drops joined rooms that are gone or closed to us. */
  async function load() {
    rooms.value = (await api.rooms()).rooms
    const visible = new Set(rooms.value.map((room) => room.slug))
    for (const slug of joined.value) {
      if (!visible.has(slug)) leave(slug, false)
    }
  }

  function upsert(room: Room) {
    const index = rooms.value.findIndex((candidate) => candidate.slug === room.slug)
    if (index >= 0) rooms.value[index] = room
    else rooms.value.push(room)
  }

  /** Subscribes to the room (once) and loads its latest messages if not loaded yet. */
  function join(slug: string) {
    if (!joined.value.includes(slug)) {
      joined.value.push(slug)
      persistJoined()
      connection.transmit(messages.subscribeFrame(slug))
    }
  }

  /** Unsubscribes; `tellServer` is false for a room we can no longer see at all. */
  function leave(slug: string, tellServer = true) {
    joined.value = joined.value.filter((candidate) => candidate !== slug)
    persistJoined()
    if (tellServer) connection.transmit({ type: 'unsubscribe', room: slug })
    messages.forget(slug)
    presence.forget(slug)
  }

  /** The room shown in the main pane (from the route). */
  async function open(slug: string | null) {
    active.value = slug
    activeMissing.value = false
    if (slug === null) return
    join(slug)
    if (!messages.timelines[slug]?.loaded) await messages.loadLatest(slug)
    if (messages.timelines[slug]?.missing) {
      leave(slug, false)
      activeMissing.value = active.value === slug
    }
  }

  async function create(slug: string, title: string, isPrivate: boolean): Promise<Room> {
    const { room } = await api.createRoom(slug, title, isPrivate)
    upsert(room)
    return room
  }

  /** The online count of a room, kept in step with presence frames for joined rooms. */
  function onlineCount(room: Room): number {
    return presence.online[room.slug]?.length ?? room.online
  }

  const addMember = (slug: string, username: string) => api.addMember(slug, username)
  const removeMember = (slug: string, username: string) => api.removeMember(slug, username)

  return {
    rooms,
    joined,
    active,
    activeMissing,
    sortedRooms,
    activeRoom,
    load,
    join,
    leave,
    open,
    create,
    onlineCount,
    addMember,
    removeMember,
  }
})
