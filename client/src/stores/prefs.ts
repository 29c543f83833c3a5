import { defineStore } from 'pinia'
import { computed, ref, watchEffect } from 'vue'

import { LOCALES, browserLocale, i18n, type Locale } from '@/i18n'

export type Theme = 'light' | 'dark'

const LOCALE_KEY = 'chatroom.locale'
const THEME_KEY = 'chatroom.theme'

function storedLocale(): Locale | null {
  const value = localStorage.getItem(LOCALE_KEY)
  return LOCALES.find((locale) => locale === value) ?? null
}

function storedTheme(): Theme | null {
  const value = localStorage.getItem(THEME_KEY)
  return value === 'light' || value === 'dark' ? value : null
}

/**
 * Language and theme. Both follow the browser until the user picks one; the pick is kept
 * in localStorage.
 */
export const usePrefsStore = defineStore('prefs', () => {
  const locale = ref<Locale>(storedLocale() ?? browserLocale())
  const chosenTheme = ref<Theme | null>(storedTheme())

  const darkQuery = window.matchMedia?.('(prefers-color-scheme: dark)')
  const systemDark = ref(darkQuery?.matches ?? false)
  darkQuery?.addEventListener('change', (event) => {
    systemDark.value = event.matches
  })

  const theme = computed<Theme>(() => chosenTheme.value ?? (systemDark.value ? 'dark' : 'light'))

  watchEffect(() => {
    i18n.global.locale.value = locale.value
    document.documentElement.lang = locale.value
  })
  watchEffect(() => {
    document.documentElement.dataset.theme = theme.value
  })

  function setLocale(next: Locale) {
    locale.value = next
    localStorage.setItem(LOCALE_KEY, next)
  }

  function toggleTheme() {
    chosenTheme.value = theme.value === 'dark' ? 'light' : 'dark'
    localStorage.setItem(THEME_KEY, chosenTheme.value)
  }

  return { locale, theme, setLocale, toggleTheme }
})
