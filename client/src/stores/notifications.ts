import { defineStore } from 'pinia'
import { computed, reactive, ref, watch, watchEffect } from 'vue'

import type { Message, Room } from '@/api/types'
import { mentions } from '@/lib/mentions'
import { useSessionStore } from '@/stores/session'

const PREFS_KEY = 'chatroom.notifications'
/** The longest body a notification shows. */
const NOTIFICATION_BODY_MAX = 160

/** What the user chose, kept on this browser (localStorage). */
interface NotificationPrefs {
  /** Desktop notifications for mentions and direct messages while the tab is hidden. */
  desktop: boolean
  sound: boolean
  /** Rooms that neither notify, sound nor count in the tab title. */
  muted: string[]
}

function loadPrefs(): NotificationPrefs {
  const fallback: NotificationPrefs = { desktop: false, sound: false, muted: [] }
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(PREFS_KEY) ?? 'null')
    if (typeof stored !== 'object' || stored === null) return fallback
    const prefs = stored as Partial<NotificationPrefs>
    return {
      desktop: prefs.desktop === true,
      sound: prefs.sound === true,
      muted: Array.isArray(prefs.muted) ? prefs.muted.filter((slug) => typeof slug === 'string') : [],
    }
  } catch {
    return fallback
  }
}

export type Permission = NotificationPermission | 'unsupported'

const browserPermission = (): Permission =>
  typeof Notification === 'undefined' ? 'unsupported' : Notification.permission

/**
 * Getting someone's attention: a desktop notification (the browser's Notification API,
 * asked for only when the user turns it on) and an optional sound for a mention or a
 * direct message while the tab is hidden, the count of messages that came while it was
 * hidden in the tab title, and per-room mute. The choices live in localStorage: they are
 * about this browser, not the account.
 */
export const useNotificationsStore = defineStore('notifications', () => {
  const session = useSessionStore()
  const prefs = reactive(loadPrefs())
  const permission = ref<Permission>(browserPermission())
  /** Messages of others that came while the tab was hidden (muted rooms aside). */
  const unseen = ref(0)
  /** The title the page shows without the count ("Lobby · Chatroom"). */
  const baseTitle = ref(document.title)
  /** Opens a room when its notification is clicked (the router's, bound by the chat view). */
  let openRoom: ((slug: string) => void) | null = null

  watch(prefs, (value) => localStorage.setItem(PREFS_KEY, JSON.stringify(value)), { deep: true })
  watchEffect(() => {
    document.title = unseen.value > 0 ? `(${unseen.value}) ${baseTitle.value}` : baseTitle.value
  })
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) unseen.value = 0
  })

  const desktopOn = computed(() => prefs.desktop && permission.value === 'granted')
  const isMuted = (slug: string) => prefs.muted.includes(slug)

  function setTitle(title: string) {
    baseTitle.value = title
  }

  function bindOpener(open: ((slug: string) => void) | null) {
    openRoom = open
  }

  /** Turns desktop notifications on: asks the browser first (this click is the moment). */
  async function enableDesktop(): Promise<Permission> {
    if (typeof Notification === 'undefined') {
      permission.value = 'unsupported'
      return permission.value
    }
    if (Notification.permission === 'default') await Notification.requestPermission()
    permission.value = Notification.permission
    prefs.desktop = permission.value === 'granted'
    return permission.value
  }

  function disableDesktop() {
    prefs.desktop = false
  }

  function setSound(on: boolean) {
    prefs.sound = on
  }

  function setMuted(slug: string, muted: boolean) {
    const others = prefs.muted.filter((candidate) => candidate !== slug)
    prefs.muted = muted ? [...others, slug] : others
  }

  /** A live message: counts in the title while hidden; a mention or DM notifies. */
  function onMessage(message: Message, room: Room | undefined) {
    const me = session.user
    if (me === null || session.isMe(message.user) || isMuted(message.room)) return
    if (!document.hidden) return
    unseen.value += 1
    const direct = (room as { kind?: string } | undefined)?.kind === 'dm'
    if (!direct && !mentions(message.body, me.username)) return
    if (prefs.sound) playChime()
    if (!desktopOn.value) return
    const where = direct ? '' : ` · ${room?.title ?? message.room}`
    try {
      const notification = new Notification(`${message.user.display_name}${where}`, {
        body: message.body.slice(0, NOTIFICATION_BODY_MAX),
        tag: `chatroom:${message.room}`,
      })
      notification.onclick = () => {
        window.focus()
        openRoom?.(message.room)
        notification.close()
      }
    } catch {
      // Some browsers allow notifications only from a service worker: the title still counts.
    }
  }

  return {
    prefs,
    permission,
    unseen,
    desktopOn,
    isMuted,
    setTitle,
    bindOpener,
    enableDesktop,
    disableDesktop,
    setSound,
    setMuted,
    onMessage,
  }
})

let audio: AudioContext | null = null

/** A short, soft two-note chime, made on the spot (no sound file to download). */
function playChime() {
  try {
    audio ??= new AudioContext()
    const now = audio.currentTime
    for (const [index, frequency] of [880, 1320].entries()) {
      const oscillator = audio.createOscillator()
      const gain = audio.createGain()
      oscillator.frequency.value = frequency
      gain.gain.setValueAtTime(0.0001, now + index * 0.12)
      gain.gain.exponentialRampToValueAtTime(0.08, now + index * 0.12 + 0.02)
      gain.gain.exponentialRampToValueAtTime(0.0001, now + index * 0.12 + 0.25)
      oscillator.connect(gain).connect(audio.destination)
      oscillator.start(now + index * 0.12)
      oscillator.stop(now + index * 0.12 + 0.3)
    }
  } catch {
    // No audio here: the notification is enough.
  }
}
