import { describe, expect, it } from 'vitest'

import { EMOJI_LIST, emojiFor, emojiName, replaceShortcodes, searchEmoji, shortcodeBeforeCaret } from '@/lib/emoji'

describe('emoji shortcodes', () => {
  it('has a few hundred, each emoji once in the list with all its names', () => {
    expect(EMOJI_LIST.length).toBeGreaterThan(300)
    expect(new Set(EMOJI_LIST.map((entry) => entry.emoji)).size).toBe(EMOJI_LIST.length)
    expect(EMOJI_LIST.find((entry) => entry.emoji === '👍')?.names).toEqual(['+1', 'thumbsup'])
  })

  it('replaces known shortcodes and leaves the rest', () => {
    expect(emojiFor('smile')).toBe('😄')
    expect(emojiFor('nope_not_one')).toBeNull()
    expect(replaceShortcodes(':+1: at 12:30:45 :nope: :tada::fire:')).toBe('👍 at 12:30:45 :nope: 🎉🔥')
  })

  it('finds the shortcode just typed before the caret', () => {
    expect(shortcodeBeforeCaret('hi :smile:', 10)).toEqual({ start: 3, end: 10, emoji: '😄' })
    expect(shortcodeBeforeCaret('hi :smile: there', 10)).toEqual({ start: 3, end: 10, emoji: '😄' })
    expect(shortcodeBeforeCaret('hi :smile', 9)).toBeNull()
    expect(shortcodeBeforeCaret('10:30:', 6)).toBeNull()
  })

  it('searches by name: prefixes first, spaces as underscores', () => {
    const hearts = searchEmoji('heart')
    expect(hearts[0]?.emoji).toBe('❤️')
    expect(hearts.some((entry) => entry.emoji === '😍')).toBe(true)
    expect(searchEmoji('heart eyes')[0]?.emoji).toBe('😍')
    expect(searchEmoji(':tada:')[0]?.emoji).toBe('🎉')
    expect(searchEmoji('zzzzqq')).toEqual([])
    expect(searchEmoji('', 10)).toHaveLength(10)
  })

  it('names an emoji for a label', () => {
    expect(emojiName('😍')).toBe('heart eyes')
    expect(emojiName('🫠')).toBe('🫠')
  })
})
