/** The input rules of contract v1, checked before a request so errors show at once. */

export const USERNAME_PATTERN = /^[A-Za-z0-9_]{3,32}$/
export const SLUG_PATTERN = /^[a-z0-9][a-z0-9-]{1,31}$/
export const PASSWORD_MIN = 8
export const DISPLAY_NAME_MAX = 64
/** The longest message body until the server tells its own (GET /api/me, `limits`). */
export const MESSAGE_MAX_CHARS_FALLBACK = 4000
/** The server's client_id window until it tells its own (its default: a day). */
export const RESEND_WINDOW_S_FALLBACK = 86_400

/** Length in characters (code points), as the server counts it. */
export const characterCount = (text: string) => [...text].length

/** Trims like the server does; null when the body cannot be sent. */
export function sendableBody(body: string, maxChars: number): string | null {
  const trimmed = body.trim()
  const length = characterCount(trimmed)
  return length > 0 && length <= maxChars ? trimmed : null
}

/**
 * A slug suggested from a room title ("Team Standup" -> "team-standup"), or null when the
 * title has too little in a-z/0-9 (Chinese, Cyrillic, emoji). The server suggests the same
 * (chatroom.domain.rules.slug_from_title; tests/fixtures/slug_from_title.json checks both).
 */
export function slugFromTitle(title: string): string | null {
  const slug = title
    .toLowerCase()
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 32)
    .replace(/-+$/, '')
  return SLUG_PATTERN.test(slug) ? slug : null
}

export const SLUG_FALLBACK_PREFIX = 'room-'
/** The server's too: `room-` and 6 random base36 characters. */
export const SLUG_FALLBACK_PATTERN = /^room-[a-z0-9]{6}$/

/** A slug for a title that suggests none: `room-` and a random base36 tail (editable). */
export function fallbackSlug(random: () => number = Math.random): string {
  let tail = ''
  for (let index = 0; index < 6; index += 1) tail += Math.floor(random() * 36).toString(36)
  return SLUG_FALLBACK_PREFIX + tail
}
