import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'

import { ApiError, api } from '@/api/http'
import { MESSAGE_MAX_CHARS_FALLBACK } from '@/lib/rules'
import { useSessionStore } from '@/stores/session'

import { alice, bob } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return {
    ...original,
    api: { me: vi.fn(), login: vi.fn(), register: vi.fn(), logoutEverywhere: vi.fn() },
  }
})

beforeEach(() => {
  setActivePinia(createPinia())
  vi.mocked(api.me).mockReset()
  vi.mocked(api.login).mockReset()
})

describe('session store', () => {
  it('takes the message length limit from GET /api/me, once', async () => {
    vi.mocked(api.me).mockResolvedValue({ user: alice, limits: { message_max_chars: 500 } })
    const session = useSessionStore()
    expect(session.messageMaxChars).toBe(MESSAGE_MAX_CHARS_FALLBACK)

    await session.restore()
    await session.restore()
    expect(session.user).toEqual(alice)
    expect(session.messageMaxChars).toBe(500)
    expect(api.me).toHaveBeenCalledTimes(1)
  })

  it('keeps the fallback limit when the server does not tell one', async () => {
    vi.mocked(api.me).mockResolvedValue({ user: alice })
    const session = useSessionStore()
    await session.restore()
    expect(session.messageMaxChars).toBe(4000)
  })

  it('is signed out when GET /api/me answers 401', async () => {
    vi.mocked(api.me).mockRejectedValue(new ApiError(401, 'not_authenticated', 'no'))
    const session = useSessionStore()
    await session.restore()
    expect(session.user).toBeNull()
    expect(session.checked).toBe(true)
  })

  it('learns the limit after a sign-in, and signs in even if that request fails', async () => {
    vi.mocked(api.login).mockResolvedValue({ user: alice })
    vi.mocked(api.me).mockResolvedValue({ user: alice, limits: { message_max_chars: 120 } })
    const session = useSessionStore()
    await session.signIn('alice', 'correct horse')
    expect(session.messageMaxChars).toBe(120)

    setActivePinia(createPinia())
    vi.mocked(api.me).mockRejectedValue(new TypeError('Failed to fetch'))
    const offline = useSessionStore()
    await offline.signIn('alice', 'correct horse')
    expect(offline.user).toEqual(alice)
    expect(offline.messageMaxChars).toBe(4000)
  })

  it('tells our own user by their numeric id', () => {
    const session = useSessionStore()
    session.user = alice
    expect(session.isMe({ ...alice, display_name: 'Renamed' })).toBe(true)
    expect(session.isMe(bob)).toBe(false)
    expect(session.isMe({ ...bob, username: alice.username })).toBe(false)
  })

  it('starts afresh at the sign-in page, saying why, when the server ended the session', () => {
    const assign = vi.fn()
    vi.stubGlobal('location', { ...window.location, assign })
    try {
      const session = useSessionStore()
      session.user = alice
      session.sessionEnded()
      session.sessionEnded() // a second socket of the tab closing: one navigation
      expect(session.user).toBeNull()
      expect(assign).toHaveBeenCalledExactlyOnceWith('/signin?ended=1')
    } finally {
      vi.unstubAllGlobals()
    }
  })

  it('stays signed in and says so when logging out everywhere fails', async () => {
    vi.mocked(api.logoutEverywhere).mockRejectedValue(new TypeError('Failed to fetch'))
    const assign = vi.fn()
    vi.stubGlobal('location', { ...window.location, assign })
    try {
      const session = useSessionStore()
      session.user = alice
      await expect(session.signOutEverywhere()).rejects.toThrow('Failed to fetch')
      expect(session.user).toEqual(alice) // the other devices are still signed in
      expect(assign).not.toHaveBeenCalled()
    } finally {
      vi.unstubAllGlobals()
    }
  })
})
