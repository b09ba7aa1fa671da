// A small Markdown renderer for model answers: paragraphs, headings, fenced code blocks with a
// language, inline code, bold, italic, lists and links. Everything is HTML-escaped first and only
// the markup below is produced, so a model's output can never inject tags or scripts; links go
// only to http(s) and mailto addresses. An unterminated code fence (mid-stream) renders as code.
'use strict';

(function () {
  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => ({
      '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
    })[c]);
  }

  // Inline markup of one escaped line or paragraph. Code spans are taken out first so their
  // contents stay literal.
  function inline(raw) {
    const spans = [];
    let text = raw.replace(/\u0000/g, '').replace(/`([^`\n]+)`/g, (_, code) => {
      spans.push(`<code>${escapeHtml(code)}</code>`);
      return `\u0000${spans.length - 1}\u0000`;
    });
    text = escapeHtml(text);
    text = text.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (whole, label, url) => {
      // `url` is escaped already (&amp; and &quot; stay inert inside the attribute).
      if (!/^(https?:\/\/|mailto:)/i.test(url)) return whole;
      return `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`;
    });
    text = text.replace(/\*\*([^*\n]+)\*\*/g, '<strong>$1</strong>');
    text = text.replace(/__([^_\n]+)__/g, '<strong>$1</strong>');
    text = text.replace(/(^|[^*\w])\*([^*\s][^*\n]*?)\*(?!\w)/g, '$1<em>$2</em>');
    text = text.replace(/(^|[^_\w])_([^_\s][^_\n]*?)_(?!\w)/g, '$1<em>$2</em>');
    return text.replace(/\u0000(\d+)\u0000/g, (_, i) => spans[Number(i)]);
  }

  const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

  function render(source) {
    const lines = String(source ?? '').replace(/\r\n?/g, '\n').split('\n');
    const out = [];
    let paragraph = [];
    let list = null; // {ordered, items: [html]}

    const flushParagraph = () => {
      if (paragraph.length) out.push(`<p>${paragraph.map(inline).join('<br>')}</p>`);
      paragraph = [];
    };
    const flushList = () => {
      if (!list) return;
      const tag = list.ordered ? 'ol' : 'ul';
      const start = list.ordered && list.start !== 1 ? ` start="${list.start}"` : '';
      out.push(`<${tag}${start}>${list.items.map((i) => `<li>${i}</li>`).join('')}</${tag}>`);
      list = null;
    };

    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = line.match(/^\s*(```+|~~~+)\s*([\w+#.-]*)/);
      if (fence) {
        flushParagraph();
        flushList();
        const marker = fence[1];
        const lang = fence[2];
        const body = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(marker)) body.push(lines[i++]);
        const label = lang ? `<span class="code-lang">${escapeHtml(lang)}</span>` : '';
        const cls = lang ? ` class="language-${escapeHtml(lang)}"` : '';
        out.push(`<div class="code">${label}<button type="button" class="copy">Copy</button>` +
                 `<pre><code${cls}>${escapeHtml(body.join('\n'))}</code></pre></div>`);
        continue;
      }
      if (!line.trim()) {
        flushParagraph();
        // A blank line inside a list does not end it when the next line continues the list.
        if (list && !(lines[i + 1] && LIST_ITEM.test(lines[i + 1]))) flushList();
        continue;
      }
      const heading = line.match(/^(#{1,6})\s+(.*)$/);
      if (heading) {
        flushParagraph();
        flushList();
        const level = Math.min(6, heading[1].length + 2);
        out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
        continue;
      }
      const item = line.match(LIST_ITEM);
      if (item) {
        flushParagraph();
        const ordered = /\d/.test(item[2]);
        if (list && list.ordered !== ordered) flushList();
        if (!list) list = { ordered, start: ordered ? parseInt(item[2], 10) : 1, items: [] };
        list.items.push(inline(item[3]));
        continue;
      }
      if (list && /^\s{2,}\S/.test(line)) {
        // An indented line continues the list's last item.
        list.items[list.items.length - 1] += '<br>' + inline(line.trim());
        continue;
      }
      flushList();
      paragraph.push(line);
    }
    flushParagraph();
    flushList();
    return out.join('');
  }

  window.SnugMarkdown = { render, escapeHtml };
})();
