import { createI18n } from 'vue-i18n'

import { en } from '@/i18n/en'
import { zhCN } from '@/i18n/zh-CN'

export const LOCALES = ['en', 'zh-CN'] as const
export type Locale = (typeof LOCALES)[number]

export const LOCALE_NAMES: Record<Locale, string> = { en: 'English', 'zh-CN': '简体中文' }

/** The browser's language when we have it (any Chinese variant maps to zh-CN), else English. */
export function browserLocale(language: string = navigator.language): Locale {
  return language.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en'
}

export const i18n = createI18n({
  legacy: false,
  locale: 'en' as Locale,
  fallbackLocale: 'en',
  messages: { en, 'zh-CN': zhCN },
})

/** A user-facing sentence for an error code of the contract (or 'timeout'). */
export function describeError(code: string, message: string, retryAfterMs: number | null): string {
  const { t, te } = i18n.global
  const key = `errors.${code}`
  if (!te(key)) return message || code
  return t(key, { seconds: Math.max(1, Math.ceil((retryAfterMs ?? 0) / 1000)), message })
}
