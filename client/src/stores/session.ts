import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import { ApiError, api } from '@/api/http'
import type { User } from '@/api/types'

/** Who is signed in. */
export const useSessionStore = defineStore('session', () => {
  const user = ref<User | null>(null)
  const checked = ref(false)

  const isAdmin = computed(() => user.value?.is_admin === true)

  /** Asks the server once whether the session cookie is still good. */
  async function restore() {
    if (checked.value) return
    try {
      user.value = (await api.me()).user
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error
      user.value = null
    }
    checked.value = true
  }

  async function signIn(username: string, password: string) {
    user.value = (await api.login(username, password)).user
    checked.value = true
  }

  async function signUp(username: string, password: string, displayName: string) {
    await api.register(username, password, displayName || undefined)
    await signIn(username, password)
  }

  /** Revokes the session, then starts the app afresh so no state of this user is left. */
  async function signOut() {
    try {
      await api.logout()
    } finally {
      user.value = null
      window.location.assign('/signin')
    }
  }

  function isMe(other: User): boolean {
    return user.value !== null && String(user.value.id) === String(other.id)
  }

  return { user, checked, isAdmin, restore, signIn, signUp, signOut, isMe }
})
