import { type PropType, type VNode, computed, defineComponent, h } from 'vue'

import { type Block, type Inline, parseMarkdown } from '@/lib/markdown'
import { ROOM_MENTION } from '@/lib/mentions'
import { useSessionStore } from '@/stores/session'

/**
 * A message body's markdown, rendered from its parsed tree (lib/markdown.ts) to elements
 * with a render function: every piece of user text is a text node, every link an <a> whose
 * href the parser allowed (http, https, mailto). No v-html, no innerHTML.
 */
export default defineComponent({
  name: 'MarkdownView',
  props: { body: { type: String as PropType<string>, required: true } },
  setup(props) {
    const session = useSessionStore()
    const blocks = computed(() => parseMarkdown(props.body))
    const me = computed(() => session.user?.username.toLowerCase() ?? null)

    function inline(nodes: readonly Inline[]): (VNode | string)[] {
      return nodes.map((node) => {
        switch (node.type) {
          case 'text':
            return node.text
          case 'code':
            return h('code', node.text)
          case 'strong':
            return h('strong', inline(node.children))
          case 'em':
            return h('em', inline(node.children))
          case 'link':
            return h('a', { href: node.href, target: '_blank', rel: 'noopener noreferrer nofollow' }, inline(node.children))
          case 'mention':
            return h(
              'span',
              {
                class: ['mention', { me: node.name === me.value || node.name === ROOM_MENTION }],
                'data-mention': node.name,
              },
              node.text,
            )
        }
      })
    }

    function block(node: Block): VNode {
      switch (node.type) {
        case 'paragraph':
          return h('p', inline(node.children))
        case 'code':
          return h('pre', h('code', node.lang ? { 'data-lang': node.lang } : {}, node.text))
        case 'quote':
          return h('blockquote', node.children.map(block))
        case 'list': {
          const items = node.items.map((item) => h('li', inline(item)))
          return node.ordered ? h('ol', node.start === 1 ? {} : { start: node.start }, items) : h('ul', items)
        }
      }
    }

    return () => h('div', { class: 'body' }, blocks.value.map(block))
  },
})
