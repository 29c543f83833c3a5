import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import { ApiError, api } from '@/api/http'
import type { ServerLimits, User } from '@/api/types'
import { MESSAGE_MAX_CHARS_FALLBACK, RESEND_WINDOW_S_FALLBACK } from '@/lib/rules'
import { useConnectionStore } from '@/stores/connection'

/** Who is signed in, and the limits the server checks their input against. */
export const useSessionStore = defineStore('session', () => {
  const user = ref<User | null>(null)
  const checked = ref(false)
  /** The longest message body the server takes (the fallback until GET /api/me says). */
  const messageMaxChars = ref(MESSAGE_MAX_CHARS_FALLBACK)
  /** How long after a send the server still stores a resend of it once, in ms. */
  const resendWindowMs = ref(RESEND_WINDOW_S_FALLBACK * 1000)

  const isAdmin = computed(() => user.value?.is_admin === true)
  /** This tab is signing out: the socket's close that follows is no news to show. */
  let signingOut = false

  function applyLimits(limits: ServerLimits | undefined) {
    if (limits === undefined) return
    messageMaxChars.value = limits.message_max_chars
    if (limits.resend_window_s !== undefined) resendWindowMs.value = limits.resend_window_s * 1000
  }

  /** Asks the server once whether the session cookie is still good. */
  async function restore() {
    if (checked.value) return
    try {
      const me = await api.me()
      user.value = me.user
      applyLimits(me.limits)
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error
      user.value = null
    }
    checked.value = true
  }

  async function signIn(username: string, password: string) {
    user.value = (await api.login(username, password)).user
    checked.value = true
    try {
      applyLimits((await api.me()).limits)
    } catch {
      // Signed in all the same; the server still refuses a body over its own limit.
    }
  }

  async function signUp(username: string, password: string, displayName: string) {
    await api.register(username, password, displayName || undefined)
    await signIn(username, password)
  }

  /** Revokes the session, then starts the app afresh so no state of this user is left. */
  async function signOut() {
    signingOut = true
    try {
      await api.logout()
    } finally {
      user.value = null
      window.location.assign('/signin')
    }
  }

  /** Ends every session of this user, this one included, on every device. Unlike signOut,
   * a failure is shown (the sessions elsewhere would live on), not covered by a reload. */
  async function signOutEverywhere() {
    signingOut = true
    try {
      await api.logoutEverywhere()
    } catch (error) {
      signingOut = false
      throw error
    }
    user.value = null
    window.location.assign('/signin')
  }

  /** Changes how others see us; the socket reconnects so that our next messages and our
   * presence carry the new name. */
  async function changeDisplayName(name: string) {
    const { user: renamed } = await api.changeDisplayName(name)
    if (user.value !== null) user.value = { ...user.value, display_name: renamed.display_name }
    useConnectionStore().reconnect()
  }

  /** Sets a new password; the server ends every other session of this user. */
  async function changePassword(current: string, next: string) {
    await api.changePassword(current, next)
  }

  /** The server ended this session (logged out here or everywhere, or the password was
   * changed on another device; or an admin banned this user, `banned` saying why):
   * start afresh at the sign-in page, saying why. */
  function sessionEnded(banned: string | null = null) {
    if (user.value === null || signingOut) return
    user.value = null
    window.location.assign(
      banned === null ? '/signin?ended=1' : '/signin?banned=1',
    )
  }

  function isMe(other: User): boolean {
    return user.value !== null && user.value.id === other.id
  }

  return {
    user,
    checked,
    messageMaxChars,
    resendWindowMs,
    isAdmin,
    restore,
    signIn,
    signUp,
    signOut,
    signOutEverywhere,
    changePassword,
    changeDisplayName,
    sessionEnded,
    isMe,
  }
})
