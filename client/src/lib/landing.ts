/**
 * Where a user lands after signing in or up: the room they had open last (on this browser),
 * if they can still see it, else the Lobby, never an empty "Pick a room" page.
 */

export const LOBBY = 'lobby'

const key = (userId: number) => `chatroom.lastRoom.${userId}`

export function rememberRoom(userId: number, slug: string) {
  try {
    localStorage.setItem(key(userId), slug)
  } catch {
    // Storage disabled: the Lobby it is, next time.
  }
}

export function lastRoom(userId: number): string | null {
  try {
    return localStorage.getItem(key(userId))
  } catch {
    return null
  }
}

/** The room to land in, given the last one and the rooms the user can see now. */
export function landingRoom(last: string | null, visible: readonly string[]): string | null {
  if (last !== null && visible.includes(last)) return last
  if (visible.includes(LOBBY)) return LOBBY
  return visible[0] ?? null
}
