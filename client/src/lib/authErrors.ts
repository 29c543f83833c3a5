/** Turns an API error of the sign-in/sign-up forms into a sentence and the field it is about. */

import { ApiError } from '@/api/http'
import { i18n } from '@/i18n'

export type AuthField = 'username' | 'password' | 'display_name'

export interface AuthFailure {
  field: AuthField | null
  message: string
}

const FIELDS: AuthField[] = ['display_name', 'username', 'password']

/** The field a 422 is about, guessed from its code and message ("invalid username", ...). */
function fieldOf(error: ApiError): AuthField | null {
  const text = `${error.code} ${error.message}`.toLowerCase()
  return FIELDS.find((name) => text.includes(name) || text.includes(name.replace('_', ' '))) ?? null
}

export function authFailure(error: unknown): AuthFailure {
  const { t } = i18n.global
  if (!(error instanceof ApiError)) {
    return { field: null, message: t('auth.failed', { message: String(error) }) }
  }
  switch (error.status) {
    case 409:
      return { field: 'username', message: t('auth.taken') }
    case 401:
      return { field: null, message: t('auth.badCredentials') }
    case 429:
      return { field: null, message: t('auth.throttled', { seconds: error.retryAfter ?? 60 }) }
    case 422:
      return { field: fieldOf(error), message: error.message }
    default:
      return { field: null, message: t('auth.failed', { message: error.message }) }
  }
}
