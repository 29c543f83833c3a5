/**
 * The sign-in and sign-up forms: their state, the checks before a request, the mapping of
 * the server's refusals onto fields, and where the user goes once signed in. The views
 * keep only their fields and which session call they make.
 */

import { reactive, ref } from 'vue'
import { useRoute, useRouter } from 'vue-router'

import { ApiError } from '@/api/http'
import { useBusy } from '@/composables/useBusy'
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

/** Turns an API error of the forms into a sentence and the field it is about. */
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
    case 403:
      if (error.code === 'banned') return { field: null, message: t('auth.banned') }
      return { field: null, message: t('auth.failed', { message: error.message }) }
    case 429:
      return { field: null, message: t('auth.throttled', { seconds: error.retryAfter ?? 60 }) }
    case 422:
      return { field: fieldOf(error), message: error.message }
    default:
      return { field: null, message: t('auth.failed', { message: error.message }) }
  }
}

/** Only a path of this site, so a crafted link cannot send the user elsewhere (else null). */
export function nextPath(next: unknown): string | null {
  return typeof next === 'string' && next.startsWith('/') && !next.startsWith('//') ? next : null
}

export type AuthForm<Field extends AuthField> = Record<Field, string>

export interface AuthFormOptions<Field extends AuthField> {
  fields: readonly Field[]
  /** The rule each field breaks, as a sentence (undefined: the field is fine). */
  check: (form: AuthForm<Field>) => Partial<Record<Field, string | undefined>>
  /** Signs in (or up) through the session store. */
  send: (form: AuthForm<Field>) => Promise<void>
  /** Where to go once signed in when no `?next=` says (default: `/`). */
  landing?: () => Promise<string>
}

export function useAuthForm<Field extends AuthField>(options: AuthFormOptions<Field>) {
  const route = useRoute()
  const router = useRouter()

  const form = reactive(
    Object.fromEntries(options.fields.map((field) => [field, ''])),
  ) as AuthForm<Field>
  const errors = reactive<Partial<Record<AuthField, string>>>({})
  const formError = ref<string | null>(null)
  const { busy, run } = useBusy()

  /** Checks the fields, sends them, and goes where the user was headed (`?next=`), or lands. */
  async function submit() {
    const broken = options.check(form)
    for (const field of options.fields) errors[field] = broken[field]
    formError.value = null
    if (options.fields.some((field) => broken[field] !== undefined)) return
    await run(async () => {
      try {
        await options.send(form)
        const next = nextPath(route.query.next)
        await router.replace(next ?? (await options.landing?.()) ?? '/')
      } catch (error) {
        const failure = authFailure(error)
        if (failure.field) errors[failure.field] = failure.message
        else formError.value = failure.message
      }
    })
  }

  return { form, errors, formError, busy, submit }
}
