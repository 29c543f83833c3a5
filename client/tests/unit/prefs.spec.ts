import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it } from 'vitest'
import { nextTick } from 'vue'

import { browserLocale, i18n } from '@/i18n'
import { usePrefsStore } from '@/stores/prefs'

beforeEach(() => {
  localStorage.clear()
  setActivePinia(createPinia())
})

describe('prefs store', () => {
  it('follows the browser language until the user picks one, then keeps the pick', async () => {
    expect(browserLocale('zh-TW')).toBe('zh-CN')
    expect(browserLocale('fr-FR')).toBe('en')

    const prefs = usePrefsStore()
    prefs.setLocale('zh-CN')
    await nextTick()
    expect(i18n.global.locale.value).toBe('zh-CN')
    expect(document.documentElement.lang).toBe('zh-CN')

    setActivePinia(createPinia())
    expect(usePrefsStore().locale).toBe('zh-CN')
  })

  it('toggles the theme and remembers it', async () => {
    const prefs = usePrefsStore()
    const first = prefs.theme
    prefs.toggleTheme()
    await nextTick()
    expect(prefs.theme).not.toBe(first)
    expect(document.documentElement.dataset.theme).toBe(prefs.theme)

    setActivePinia(createPinia())
    expect(usePrefsStore().theme).toBe(prefs.theme)
  })
})
