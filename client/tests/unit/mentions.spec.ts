import { beforeEach, describe, expect, it, vi } from 'vitest'

import { suggestFor } from '@/composables/useMentionSuggestions'
import { mentionAtCaret, mentions, segmentBody } from '@/lib/mentions'
import { useNotificationsStore } from '@/stores/notifications'

import { alice, bob, message, signedIn } from './fakes'

describe('mentions', () => {
  it('finds @username in any case and @room, not inside words or addresses', () => {
    expect(mentions('hi @Alice, look', 'alice')).toBe(true)
    expect(mentions('(@alice)', 'alice')).toBe(true)
    expect(mentions('@room standup now', 'alice')).toBe(true)
    expect(mentions('mail bob@alice.example', 'alice')).toBe(false)
    expect(mentions('@alice_b is not her', 'alice')).toBe(false)
    expect(mentions('@@alice', 'alice')).toBe(false)
    expect(mentions('no mention here', 'alice')).toBe(false)
  })

  it('splits a body into text, links and mentions, never HTML', () => {
    expect(segmentBody('hey @bob see https://x.io <b>@room</b>')).toEqual([
      { kind: 'text', text: 'hey ' },
      { kind: 'mention', text: '@bob', name: 'bob' },
      { kind: 'text', text: ' see ' },
      { kind: 'link', text: 'https://x.io', href: 'https://x.io/' },
      { kind: 'text', text: ' <b>' },
      { kind: 'mention', text: '@room', name: 'room' },
      { kind: 'text', text: '</b>' },
    ])
  })

  it('knows the mention being typed at the caret', () => {
    expect(mentionAtCaret('hi @al', 6)).toEqual({ start: 3, prefix: 'al' })
    expect(mentionAtCaret('hi @', 4)).toEqual({ start: 3, prefix: '' })
    expect(mentionAtCaret('hi @al there', 12)).toBeNull()
    expect(mentionAtCaret('bob@al', 6)).toBeNull()
  })

  it('suggests members by username or display name, not me, then @room', () => {
    const carol = { id: 3, username: 'carol', display_name: 'Robin Carol' }
    expect(suggestFor('r', [alice, bob, carol], 'alice')).toEqual([
      { username: 'carol', displayName: 'Robin Carol' },
      { username: 'room', displayName: null },
    ])
    expect(suggestFor('', [alice, bob], 'alice').map((s) => s.username)).toEqual(['bob', 'room'])
  })
})

describe('notifications store', () => {
  let hidden = false
  const shown: { title: string; body?: string }[] = []

  beforeEach(() => {
    hidden = false
    shown.length = 0
    localStorage.clear()
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden })
    class FakeNotification {
      static permission: NotificationPermission = 'granted'
      static requestPermission = vi.fn(async () => {
        FakeNotification.permission = 'granted'
        return FakeNotification.permission
      })
      onclick: (() => void) | null = null
      constructor(title: string, options?: NotificationOptions) {
        shown.push({ title, body: options?.body })
      }
      close() {}
    }
    vi.stubGlobal('Notification', FakeNotification)
    signedIn(alice)
  })

  it('notifies a mention only while the tab is hidden, counts in the title, and respects mute', async () => {
    const notifications = useNotificationsStore()
    notifications.setTitle('Lobby · Chatroom')
    await notifications.enableDesktop()

    notifications.onMessage(message('1-0', bob, 'lobby', 'hi @alice'), undefined)
    expect(shown).toEqual([]) // visible: the message list shows it

    hidden = true
    notifications.onMessage(message('2-0', bob, 'lobby', 'plain'), undefined)
    notifications.onMessage(message('3-0', bob, 'lobby', 'ping @alice'), undefined)
    notifications.onMessage(message('4-0', alice, 'lobby', '@room mine'), undefined)
    expect(shown).toEqual([{ title: 'Bob · lobby', body: 'ping @alice' }])
    expect(notifications.unseen).toBe(2)
    await Promise.resolve()
    expect(document.title).toBe('(2) Lobby · Chatroom')

    notifications.setMuted('lobby', true)
    notifications.onMessage(message('5-0', bob, 'lobby', '@alice again'), undefined)
    expect(shown).toHaveLength(1)
    expect(notifications.unseen).toBe(2)

    hidden = false
    document.dispatchEvent(new Event('visibilitychange'))
    expect(notifications.unseen).toBe(0)
  })

  it('asks for permission only when turned on, and keeps the choice', async () => {
    const notifications = useNotificationsStore()
    expect(Notification.requestPermission).not.toHaveBeenCalled()
    ;(Notification as unknown as { permission: string }).permission = 'default'
    await notifications.enableDesktop()
    expect(Notification.requestPermission).toHaveBeenCalledTimes(1)
    await Promise.resolve()
    expect(notifications.desktopOn).toBe(true)
    await Promise.resolve()
    expect(JSON.parse(localStorage.getItem('chatroom.notifications')!)).toMatchObject({ desktop: true })
  })
})
