import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

import { describe, expect, it } from 'vitest'

import { ApiError } from '@/api/http'
import { authFailure, nextPath } from '@/composables/useAuthForm'
import { landingRoom } from '@/lib/landing'
import { BACKOFF_BASE_MS, BACKOFF_CAP_MS, backoffDelay } from '@/lib/backoff'
import { linkify } from '@/lib/linkify'
import {
  SLUG_FALLBACK_PATTERN,
  SLUG_PATTERN,
  fallbackSlug,
  sendableBody,
  slugFromTitle,
} from '@/lib/rules'
import { compareIds } from '@/lib/streamId'
import { buildTimeline } from '@/lib/timeline'

import { alice, bob, message } from './fakes'

describe('linkify', () => {
  it('turns http and https URLs into links and leaves the rest as text', () => {
    expect(linkify('see https://example.com/a?b=1, and http://x.io.')).toEqual([
      { kind: 'text', text: 'see ' },
      { kind: 'link', text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
      { kind: 'text', text: ', and ' },
      { kind: 'link', text: 'http://x.io', href: 'http://x.io/' },
      { kind: 'text', text: '.' },
    ])
  })

  it('never links other schemes', () => {
    for (const body of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'ftp://example.com']) {
      expect(linkify(body)).toEqual([{ kind: 'text', text: body }])
    }
  })

  it('keeps markup as plain text', () => {
    const body = '<img src=x onerror=alert(1)>'
    expect(linkify(body)).toEqual([{ kind: 'text', text: body }])
  })

  it('keeps a balanced closing parenthesis in the URL', () => {
    expect(linkify('(https://en.wikipedia.org/wiki/Foo_(bar))')[1]).toMatchObject({
      kind: 'link',
      text: 'https://en.wikipedia.org/wiki/Foo_(bar)',
    })
  })
})

describe('backoffDelay', () => {
  it('doubles from 0.5 s up to 15 s', () => {
    const delays = [0, 1, 2, 3, 4, 5, 10, 50].map((attempt) => backoffDelay(attempt, () => 0.5))
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000])
  })

  it('adds jitter but stays within 0.5-15 s', () => {
    expect(backoffDelay(3, () => 0)).toBe(3200)
    expect(backoffDelay(3, () => 1)).toBe(4800)
    expect(backoffDelay(0, () => 0)).toBe(BACKOFF_BASE_MS)
    expect(backoffDelay(20, () => 1)).toBe(BACKOFF_CAP_MS)
  })
})

describe('compareIds', () => {
  it('orders by milliseconds, then by sequence, numerically', () => {
    const ids = ['1000-10', '999-5', '1000-2', '1000-0']
    expect(ids.sort(compareIds)).toEqual(['999-5', '1000-0', '1000-2', '1000-10'])
  })
})

describe('buildTimeline', () => {
  const at = (iso: string, id: string, user = bob) => ({
    ...message(id, user),
    created_at: iso,
  })

  it('groups consecutive messages of one author and separates days', () => {
    const items = buildTimeline(
      [
        at('2026-01-01T10:00:00Z', '1-0'),
        at('2026-01-01T10:01:00Z', '2-0'),
        at('2026-01-01T10:02:00Z', '3-0', alice),
        at('2026-01-01T10:20:00Z', '4-0', alice),
        at('2026-01-03T10:00:00Z', '5-0', alice),
      ],
      [],
      alice,
      null,
    )
    expect(items.map((item) => (item.kind === 'group' ? item.entries.length : item.kind))).toEqual(
      ['day', 2, 1, 1, 'day', 1],
    )
  })

  it('puts the new-messages marker before the first unread message', () => {
    const items = buildTimeline(
      [at('2026-01-01T10:00:00Z', '1-0'), at('2026-01-01T10:01:00Z', '2-0')],
      [],
      alice,
      '2-0',
    )
    expect(items.map((item) => item.kind)).toEqual(['day', 'group', 'marker', 'group'])
  })

  it('shows our unacknowledged messages last, as ours', () => {
    const items = buildTimeline([], [{ clientId: 'c1', body: 'hi', createdAt: 0 }], alice, null)
    expect(items.at(-1)).toMatchObject({ kind: 'group', user: alice, entries: [{ clientId: 'c1' }] })
  })
})

/** Titles and slugs the server's test checks too (tests/test_rules.py). */
const SLUG_CASES = (
  JSON.parse(
    readFileSync(resolve(__dirname, '../../../tests/fixtures/slug_from_title.json'), 'utf8'),
  ) as { cases: [string, string | null][] }
).cases

describe('slugFromTitle', () => {
  it('suggests a valid slug', () => {
    expect(slugFromTitle('Team Standup!')).toBe('team-standup')
    expect(slugFromTitle('  Café Ünïcode ')).toBe('cafe-unicode')
    expect(slugFromTitle('中文')).toBeNull()
  })

  it.each(SLUG_CASES)('agrees with the server: %j -> %j', (title, slug) => {
    expect(slugFromTitle(title)).toBe(slug)
  })

  it('falls back to room- and a random base36 tail the server accepts', () => {
    const slug = fallbackSlug()
    expect(slug).toMatch(SLUG_FALLBACK_PATTERN)
    expect(slug).toMatch(SLUG_PATTERN)
  })
})

describe('sendableBody', () => {
  it('refuses empty and too long bodies, counting characters like the server', () => {
    expect(sendableBody('   ', 10)).toBeNull()
    expect(sendableBody(' hi ', 10)).toBe('hi')
    expect(sendableBody('x'.repeat(4000), 4000)).not.toBeNull()
    expect(sendableBody('x'.repeat(4001), 4000)).toBeNull()
    expect(sendableBody(' x ', 1)).toBe('x')
    // Emoji are one character each, though two UTF-16 units.
    expect(sendableBody('😀'.repeat(10), 10)).not.toBeNull()
    expect(sendableBody('😀'.repeat(11), 10)).toBeNull()
  })
})

describe('nextPath', () => {
  it('keeps a path of this site and nothing else', () => {
    expect(nextPath('/r/lobby')).toBe('/r/lobby')
    expect(nextPath('//evil.example/')).toBeNull()
    expect(nextPath('https://evil.example/')).toBeNull()
    expect(nextPath(undefined)).toBeNull()
    expect(nextPath(['/r/lobby'])).toBeNull()
  })
})

describe('authFailure', () => {
  it('maps the contract statuses to fields and sentences', () => {
    expect(authFailure(new ApiError(409, 'username_taken', 'taken'))).toEqual({
      field: 'username',
      message: 'This username is taken',
    })
    expect(authFailure(new ApiError(422, 'invalid_password', 'password too short'))).toEqual({
      field: 'password',
      message: 'password too short',
    })
    expect(authFailure(new ApiError(429, 'throttled', 'slow', 30))).toEqual({
      field: null,
      message: 'Too many attempts. Try again in 30 s.',
    })
  })
})

describe('landingRoom', () => {
  it('lands in the last room while it is visible, else in the Lobby', () => {
    expect(landingRoom('dev', ['dev', 'lobby'])).toBe('dev')
    expect(landingRoom('gone', ['dev', 'lobby'])).toBe('lobby')
    expect(landingRoom(null, ['dev', 'lobby'])).toBe('lobby')
    expect(landingRoom(null, ['dev'])).toBe('dev')
    expect(landingRoom(null, [])).toBeNull()
  })
})
