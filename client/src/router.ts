import type { Pinia } from 'pinia'
import { createRouter, createWebHistory } from 'vue-router'

import { useSessionStore } from '@/stores/session'
import ChatView from '@/views/ChatView.vue'
import EmptyRoomPane from '@/views/EmptyRoomPane.vue'
import RoomPane from '@/views/RoomPane.vue'

declare module 'vue-router' {
  interface RouteMeta {
    /** Only for signed-in users. */
    auth?: boolean
    /** Only for signed-out users (the sign-in and sign-up pages). */
    guest?: boolean
    /** Only for admins. */
    admin?: boolean
  }
}

export function createAppRouter(pinia: Pinia) {
  const router = createRouter({
    history: createWebHistory(),
    routes: [
      {
        path: '/',
        component: ChatView,
        meta: { auth: true },
        children: [
          { path: '', name: 'home', component: EmptyRoomPane },
          { path: 'r/:slug', name: 'room', component: RoomPane, props: true },
          // A message's permalink: the room, scrolled to the message (lib/search.ts).
          { path: 'r/:slug/m/:id', name: 'message', component: RoomPane, props: true },
        ],
      },
      {
        path: '/signin',
        name: 'signin',
        component: () => import('@/views/SignInView.vue'),
        meta: { guest: true },
      },
      {
        path: '/signup',
        name: 'signup',
        component: () => import('@/views/SignUpView.vue'),
        meta: { guest: true },
      },
      {
        path: '/admin',
        name: 'admin',
        component: () => import('@/views/AdminView.vue'),
        meta: { auth: true, admin: true },
      },
      { path: '/:unknown(.*)*', redirect: '/' },
    ],
  })

  router.beforeEach(async (to) => {
    const session = useSessionStore(pinia)
    await session.restore()
    if (to.meta.auth && session.user === null) {
      return { name: 'signin', query: to.fullPath === '/' ? {} : { next: to.fullPath } }
    }
    if (to.meta.guest && session.user !== null) return { name: 'home' }
    if (to.meta.admin && !session.isAdmin) return { name: 'home' }
    return true
  })

  return router
}
