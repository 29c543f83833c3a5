/**
 * Mentions in a message body, as the server counts them (chatroom.domain.mentions):
 * `@username` (any case) or `@room`, not inside a longer word (`bob@alice.example` is not).
 */

export const ROOM_MENTION = 'room'

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const patterns = new Map<string, RegExp>()

function pattern(username: string): RegExp {
  let found = patterns.get(username)
  if (found === undefined) {
    const names = [username, ROOM_MENTION].map(escape).join('|')
    found = new RegExp(`(?<![A-Za-z0-9_@])@(?:${names})(?![A-Za-z0-9_])`, 'i')
    patterns.set(username, found)
  }
  return found
}

/** Whether the body mentions this user (by name, or everyone with `@room`). */
export function mentions(body: string, username: string): boolean {
  return body.includes('@') && pattern(username).test(body)
}
