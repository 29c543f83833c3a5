/**
 * Emoji shortcodes: `:smile:` becomes 😄 when typed in the composer and when shown in a
 * message; and the list the reaction picker searches by name. Unknown names stay text.
 */

import { EMOJI_TABLE } from '@/lib/emojiData'

export interface EmojiEntry {
  /** Its first name in the table (what the picker shows and searches first). */
  name: string
  /** Every name it has (`+1`, `thumbsup`). */
  names: string[]
  emoji: string
}

/** The reactions a picker offers before anything is searched. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'] as const

const SHORTCODE = /:([a-z0-9_+-]{1,48}):/g
const SHORTCODE_AT_END = /:([a-z0-9_+-]{1,48}):$/

const table = new Map(Object.entries(EMOJI_TABLE))

/** The emoji of a shortcode name (without colons), or null. */
export function emojiFor(name: string): string | null {
  return table.get(name) ?? null
}

/** Replaces the known `:name:` shortcodes of a text with their emoji. */
export function replaceShortcodes(text: string): string {
  if (!text.includes(':')) return text
  return text.replace(SHORTCODE, (whole, name: string) => table.get(name) ?? whole)
}

/**
 * The shortcode just typed before the caret (`hi :smile:|`), to turn into its emoji at
 * once: its start, its end (the caret) and the emoji; null when there is none.
 */
export function shortcodeBeforeCaret(
  text: string,
  caret: number,
): { start: number; end: number; emoji: string } | null {
  const before = text.slice(Math.max(0, caret - 50), caret)
  const match = SHORTCODE_AT_END.exec(before)
  if (match === null) return null
  const emoji = table.get(match[1]!)
  if (emoji === undefined) return null
  return { start: caret - match[0].length, end: caret, emoji }
}

/** Every emoji once, with all its names, in table order. */
export const EMOJI_LIST: readonly EmojiEntry[] = (() => {
  const byEmoji = new Map<string, EmojiEntry>()
  for (const [name, emoji] of table) {
    const entry = byEmoji.get(emoji)
    if (entry === undefined) byEmoji.set(emoji, { name, names: [name], emoji })
    else entry.names.push(name)
  }
  return [...byEmoji.values()]
})()

/** A name as people read it: `thumbsup` -> `thumbsup`, `heart_eyes` -> `heart eyes`. */
export const emojiLabel = (entry: EmojiEntry) => entry.name.replaceAll('_', ' ')

/**
 * The emoji whose names match a search: the name itself first, then names starting with
 * it, then names holding it (`heart` finds ❤️ before 😍). Spaces match underscores; case does not matter.
 */
export function searchEmoji(query: string, limit = 48): EmojiEntry[] {
  const needle = query.trim().toLowerCase().replace(/^:|:$/g, '').replaceAll(' ', '_')
  if (needle === '') return EMOJI_LIST.slice(0, limit)
  const exact: EmojiEntry[] = []
  const starts: EmojiEntry[] = []
  const holds: EmojiEntry[] = []
  for (const entry of EMOJI_LIST) {
    if (entry.names.includes(needle)) exact.push(entry)
    else if (entry.names.some((name) => name.startsWith(needle))) starts.push(entry)
    else if (entry.names.some((name) => name.includes(needle))) holds.push(entry)
  }
  return [...exact, ...starts, ...holds].slice(0, limit)
}

/** The name of an emoji (for a chip's label), or the emoji itself when it has none. */
export function emojiName(emoji: string): string {
  const entry = EMOJI_LIST.find((candidate) => candidate.emoji === emoji)
  return entry === undefined ? emoji : emojiLabel(entry)
}
