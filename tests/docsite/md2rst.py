# Copyright: deckhouse.platform developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the Markdown guides of docs/ into the RST pages of the docsite (docs/docsite/rst/).

Usage: md2rst.py OUT_DIR GUIDE.md...

antsibull-docs takes a collection's extra docs only as RST in docs/docsite/rst/, while the guides are
written (and read on the repository) as Markdown. This converts the Markdown the guides use:
headings, paragraphs, bullet and numbered lists (nested by indentation), fenced code blocks, pipe
tables, `code`, **strong**, *emphasis*, and links. Each page and heading gets a label
``ansible_collections.deckhouse.platform.docsite.<guide>[.<anchor>]``; a link to another guide or
to an anchor becomes a :ref:, a link to another file of the repository points at the repository.
Anything else is written as text with RST's markup characters escaped, so a page never carries
markup it did not ask for. tests/docs.sh regenerates the pages and checks they are up to date.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import sys

PREFIX = 'ansible_collections.deckhouse.platform.docsite.'
REPO = 'https://github.com/deckhouse/ansible-collection-platform/blob/main/'
ADORN = {1: '=', 2: '-', 3: '~', 4: '^', 5: '"', 6: "'"}

FENCE = re.compile(r'^(\s*)(```+|~~~+)\s*([\w+-]*)\s*$')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
ITEM = re.compile(r'^(\s*)([-*+]|\d+[.)])\s+(.*)$')
TABLE_SEP = re.compile(r'^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$')
INLINE = re.compile(r'(?P<code>`+)(?P<codetext>[^`].*?)(?P=code)'
                    r'|\[(?P<ltext>[^\]]+)\]\((?P<lurl>[^)\s]+)\)'
                    r'|\*\*(?P<strong>[^*]+?)\*\*'
                    r'|(?<![\w*])\*(?P<em>[^*\s][^*]*?)\*(?![\w*])', re.S)


def slug(text):
    """GitHub's anchor of a heading."""
    text = re.sub(r'[`*_\[\]()]', '', text).strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def guide_name(path):
    return os.path.splitext(os.path.basename(path))[0].replace('-', '_')


def escape(text):
    """Plain text with RST's inline markup characters made literal."""
    text = text.replace('\\', '\\\\')
    text = re.sub(r'([*|`])', r'\\\1', text)
    # `name_` and `_name` are references and targets in RST.
    text = re.sub(r'_(?=\W|$)', r'\\_', text)
    text = re.sub(r'(?<!\w)_', r'\\_', text)
    return text


class Converter:
    def __init__(self, guides):
        self.guides = {os.path.basename(g): guide_name(g) for g in guides}
        self.anchors = set()

    def link(self, text, url, here):
        if re.match(r'^[a-z]+://', url) or url.startswith('mailto:'):
            return '`%s <%s>`__' % (escape(text), url)
        path, anchor = (url.split('#', 1) + [''])[:2]
        target = self.guides.get(os.path.basename(path)) if path else here
        if target is not None and (not path or os.path.dirname(path) in ('', '.')):
            label = PREFIX + target + ('.' + anchor if anchor else '')
            if anchor and label not in self.anchors:
                label = PREFIX + target
            return ':ref:`%s <%s>`' % (escape(text), label)
        rel = os.path.normpath(os.path.join('docs', path))
        return '`%s <%s%s>`__' % (escape(text), REPO, rel + ('#' + anchor if anchor else ''))

    def inline(self, text, here):
        out, pos = [], 0
        for m in INLINE.finditer(text):
            out.append(escape(text[pos:m.start()]))
            if m.group('code'):
                code = ' '.join(m.group('codetext').split())
                piece = '``%s``' % code if '``' not in code else ':literal:`%s`' % code.replace('`', '\\`')
            elif m.group('ltext'):
                piece = self.link(m.group('ltext'), m.group('lurl'), here)
            elif m.group('strong'):
                piece = '**%s**' % escape(m.group('strong'))
            else:
                piece = '*%s*' % escape(m.group('em'))
            # RST inline markup must stand apart from the words around it.
            if m.start() > 0 and not re.match(r'[\s\-:/\'"<(\[{]', text[m.start() - 1]):
                piece = '\\ ' + piece
            if m.end() < len(text) and not re.match(r'[\s\-.,:;!?\\/\'")\]}>]', text[m.end()]):
                piece += '\\ '
            out.append(piece)
            pos = m.end()
        out.append(escape(text[pos:]))
        return ''.join(out)

    @staticmethod
    def paragraph(lines, i, first):
        """The text of a paragraph from its first line on (Markdown's lazy continuation lines), and the
        index of the line after it."""
        text = [first]
        while i < len(lines) and lines[i].strip() and not (
                FENCE.match(lines[i]) or HEADING.match(lines[i]) or ITEM.match(lines[i])
                or ('|' in lines[i] and i + 1 < len(lines) and TABLE_SEP.match(lines[i + 1]))):
            text.append(lines[i].strip())
            i += 1
        return '\n'.join(text), i

    def collect_anchors(self, lines, here):
        for line in lines:
            m = HEADING.match(line)
            if m:
                self.anchors.add(PREFIX + here + '.' + slug(m.group(2)))

    def table(self, rows, indent, here):
        cells = [[c.strip() for c in r.strip().strip('|').split('|')] for r in rows]
        width = max(len(r) for r in cells)
        out = [indent + '.. list-table::', indent + '   :header-rows: 1', '']
        for row in cells:
            row = row + [''] * (width - len(row))
            for i, cell in enumerate(row):
                out.append(indent + ('   * - ' if i == 0 else '     - ') + (self.inline(cell, here) or '\\'))
        return out + ['']

    def convert(self, path):
        here = guide_name(path)
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
        self.collect_anchors(lines, here)
        out = ['..', '   Generated from docs/%s by tests/docsite/md2rst.py (`make docs`): edit the Markdown.' % os.path.basename(path), '']
        out += ['.. _%s%s:' % (PREFIX, here), '']
        i, first = 0, True
        # (markdown indent, rst indent) of the open list items, innermost last
        stack = []
        # the indent of the last text line written (a change of indent needs a blank line in RST)
        prev = [None]

        def rst_indent(md_indent):
            # A line belongs to the innermost item whose content column it reaches.
            while stack and md_indent < stack[-1][0]:
                stack.pop()
            return stack[-1][1] if stack else ''

        while i < len(lines):
            line = lines[i]
            if not line.strip():
                out.append('')
                prev[0] = None
                i += 1
                continue
            md_indent = len(line) - len(line.lstrip())
            m = FENCE.match(line)
            if m:
                ind = rst_indent(md_indent)
                lang = m.group(3) or 'text'
                lang = {'sh': 'shell', 'shell': 'shell', 'yml': 'yaml'}.get(lang, lang)
                body, i = [], i + 1
                while i < len(lines) and not (FENCE.match(lines[i]) and lines[i].strip().startswith(m.group(2)[:3])
                                              and not FENCE.match(lines[i]).group(3)):
                    body.append(lines[i][md_indent:] if lines[i][:md_indent].strip() == '' else lines[i].lstrip())
                    i += 1
                i += 1
                # The docs lint parses yaml blocks as one document; several documents are highlighted alike.
                if lang == 'yaml' and any(b.strip() == '---' for b in body[1:]):
                    lang = 'yaml+jinja'
                out += ['', ind + '.. code-block:: ' + lang, '']
                out += [(ind + '   ' + b) if b.strip() else '' for b in body]
                out.append('')
                prev[0] = None
                continue
            m = HEADING.match(line)
            if m:
                stack.clear()
                level, title = len(m.group(1)), self.inline(m.group(2), here)
                if not first:
                    out += ['', '.. _%s%s.%s:' % (PREFIX, here, slug(m.group(2))), '']
                out += [title, ADORN[level] * len(title), '']
                first = False
                prev[0] = None
                i += 1
                continue
            if '|' in line and i + 1 < len(lines) and TABLE_SEP.match(lines[i + 1]):
                ind = rst_indent(md_indent)
                rows, i = [line], i + 2
                while i < len(lines) and lines[i].strip().startswith('|'):
                    rows.append(lines[i])
                    i += 1
                out += [''] + self.table(rows, ind, here)
                prev[0] = None
                continue
            m = ITEM.match(line)
            if m:
                # Close the items this one is not inside of (same or deeper marker column).
                while stack and stack[-1][2] >= md_indent:
                    stack.pop()
                parent = stack[-1][1] if stack else ''
                marker = '-' if m.group(2) in '-*+' else m.group(2)[:-1] + '.'
                content = parent + ' ' * (len(marker) + 1)
                stack.append((len(line) - len(m.group(3)), content, md_indent))
                para, i = self.paragraph(lines, i + 1, m.group(3))
                para = self.inline(para, here).split('\n')
                out += ['', parent + marker + ' ' + para[0]] + [content + p for p in para[1:]]
                prev[0] = content
                continue
            ind = rst_indent(md_indent)
            if ind != prev[0]:
                out.append('')
            para, i = self.paragraph(lines, i + 1, line.strip())
            out += [ind + p for p in self.inline(para, here).split('\n')]
            prev[0] = ind
        text = '\n'.join(out)
        text = re.sub(r'\n{3,}', '\n\n', text).strip('\n') + '\n'
        return text


def main(argv):
    if len(argv) < 3:
        print('usage: md2rst.py OUT_DIR GUIDE.md...', file=sys.stderr)
        return 2
    out_dir, guides = argv[1], argv[2:]
    conv = Converter(guides)
    for g in guides:
        with open(g, encoding='utf-8') as f:
            conv.collect_anchors(f.read().splitlines(), guide_name(g))
    os.makedirs(out_dir, exist_ok=True)
    for g in guides:
        dest = os.path.join(out_dir, guide_name(g) + '.rst')
        with open(dest, 'w', encoding='utf-8') as f:
            f.write(conv.convert(g))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
