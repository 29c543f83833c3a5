import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type { ClientFrame } from '@/api/types'
import { useConnectionStore } from '@/stores/connection'
import { TYPING_SHOWN_MS, usePresenceStore } from '@/stores/presence'

import { alice, bob, signedIn } from './fakes'

beforeEach(() => {
  vi.useFakeTimers()
  signedIn(alice)
})

afterEach(() => {
  vi.useRealTimers()
})

describe('presence store', () => {
  it('keeps one entry per user, however many tabs join', () => {
    const presence = usePresenceStore()
    presence.setOnline('lobby', [alice, bob, bob])
    presence.join('lobby', bob)
    expect(presence.online.lobby).toEqual([alice, bob])
    presence.leave('lobby', bob)
    expect(presence.online.lobby).toEqual([alice])
  })

  it('shows "is typing" for 5 s after the last typing frame', () => {
    const presence = usePresenceStore()
    presence.startTyping('lobby', bob)
    vi.advanceTimersByTime(TYPING_SHOWN_MS - 1000)
    presence.startTyping('lobby', bob)
    vi.advanceTimersByTime(TYPING_SHOWN_MS - 1)
    expect(presence.typing.lobby).toEqual([bob])
    vi.advanceTimersByTime(1)
    expect(presence.typing.lobby).toEqual([])
  })

  it('ignores our own typing frames', () => {
    const presence = usePresenceStore()
    presence.startTyping('lobby', alice)
    expect(presence.typing.lobby ?? []).toEqual([])
  })

  it('sends typing at most once per 3 s per room', () => {
    const presence = usePresenceStore()
    const sent: ClientFrame[] = []
    useConnectionStore().bindTransport((frame) => sent.push(frame) > 0)

    presence.notifyTyping('lobby', 0)
    presence.notifyTyping('lobby', 1000)
    presence.notifyTyping('lobby', 2999)
    presence.notifyTyping('dev', 2999)
    presence.notifyTyping('lobby', 3000)

    expect(sent).toEqual([
      { type: 'typing', room: 'lobby' },
      { type: 'typing', room: 'dev' },
      { type: 'typing', room: 'lobby' },
    ])
  })
})

describe('presence and display names', () => {
  it('takes a new display name from a join of someone already online', () => {
    signedIn(alice)
    const presence = usePresenceStore()
    presence.setOnline('lobby', [bob])
    presence.join('lobby', { ...bob, display_name: 'Robert' })
    presence.join('lobby', { ...bob, display_name: 'Robert' })
    expect(presence.online.lobby).toEqual([{ ...bob, display_name: 'Robert' }])
  })
})
