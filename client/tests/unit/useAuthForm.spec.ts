import { describe, expect, it, vi } from 'vitest'
import { createApp } from 'vue'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'

import { ApiError } from '@/api/http'
import { useAuthForm, type AuthFormOptions } from '@/composables/useAuthForm'

type Field = 'username' | 'password'

/** The composable inside a mounted app with a router at `at`. */
async function mounted(
  at: string,
  send: AuthFormOptions<Field>['send'],
  landing?: AuthFormOptions<Field>['landing'],
) {
  const router: Router = createRouter({
    history: createMemoryHistory(),
    routes: [{ path: '/:any(.*)*', component: { render: () => null } }],
  })
  await router.push(at)
  let form!: ReturnType<typeof useAuthForm<Field>>
  const app = createApp({
    setup() {
      form = useAuthForm<Field>({
        fields: ['username', 'password'],
        check: (values) => ({
          username: values.username ? undefined : 'a username, please',
          password: values.password ? undefined : 'a password, please',
        }),
        send,
        landing,
      })
      return () => null
    },
  })
  app.use(router).mount(document.createElement('div'))
  return { form, router }
}

describe('useAuthForm', () => {
  it('shows the broken rules and sends nothing', async () => {
    const send = vi.fn(async () => {})
    const { form } = await mounted('/signin', send)
    form.form.username = 'alice'
    await form.submit()
    expect(form.errors).toEqual({ username: undefined, password: 'a password, please' })
    expect(send).not.toHaveBeenCalled()
  })

  it('sends the fields, then goes where the user was headed', async () => {
    const send = vi.fn(async () => {})
    const { form, router } = await mounted('/signin?next=/r/dev', send)
    Object.assign(form.form, { username: 'alice', password: 'correct horse' })
    await form.submit()
    expect(send).toHaveBeenCalledWith({ username: 'alice', password: 'correct horse' })
    expect(router.currentRoute.value.fullPath).toBe('/r/dev')
    expect(form.busy.value).toBe(false)
  })

  it('never follows a next= to another site', async () => {
    const { form, router } = await mounted('/signup?next=//evil.example', async () => {})
    Object.assign(form.form, { username: 'alice', password: 'correct horse' })
    await form.submit()
    expect(router.currentRoute.value.fullPath).toBe('/')
  })

  it('lands where `landing` says when no next= is given (the last room, or the Lobby)', async () => {
    const { form, router } = await mounted('/signin', async () => {}, async () => '/r/lobby')
    Object.assign(form.form, { username: 'alice', password: 'correct horse' })
    await form.submit()
    expect(router.currentRoute.value.fullPath).toBe('/r/lobby')
  })

  it('puts a refusal on its field, or above the form, and stays', async () => {
    const send = vi.fn()
    const { form, router } = await mounted('/signup', send)
    Object.assign(form.form, { username: 'alice', password: 'correct horse' })

    send.mockRejectedValueOnce(new ApiError(409, 'username_taken', 'taken'))
    await form.submit()
    expect(form.errors.username).toBe('This username is taken')
    expect(form.formError.value).toBeNull()

    send.mockRejectedValueOnce(new ApiError(429, 'throttled', 'slow', 30))
    await form.submit()
    expect(form.errors.username).toBeUndefined()
    expect(form.formError.value).toBe('Too many attempts. Try again in 30 s.')
    expect(router.currentRoute.value.fullPath).toBe('/signup')
  })
})
