import { landingRoom, lastRoom } from '@/lib/landing'
import { useRoomsStore } from '@/stores/rooms'
import { useSessionStore } from '@/stores/session'

/** The path to land on once signed in: the last room open on this browser, else the Lobby. */
export function useLanding() {
  const rooms = useRoomsStore()
  const session = useSessionStore()

  return async function landingPath(): Promise<string> {
    const user = session.user
    if (user === null) return '/'
    try {
      await rooms.load()
    } catch {
      return '/' // the room list shows why, on the next page
    }
    const slug = landingRoom(
      lastRoom(user.id),
      rooms.rooms.map((room) => room.slug),
    )
    return slug === null ? '/' : `/r/${encodeURIComponent(slug)}`
  }
}
