// The arithmetic of the virtualised log view, with no DOM so it can be
// tested under node: which lines to draw for a scroll position, and where
// to scroll to show a line.  Every line has the same height.

// Lines [first, last) to render, with `overscan` extra lines each side.
export function visibleWindow(scrollTop, viewHeight, lineHeight, total, overscan = 20) {
  if (!(lineHeight > 0) || total <= 0) return { first: 0, last: 0, offset: 0, height: 0 };
  const height = total * lineHeight;
  const top = Math.min(Math.max(0, scrollTop), Math.max(0, height - viewHeight));
  const firstVisible = Math.floor(top / lineHeight);
  const lastVisible = Math.ceil((top + Math.max(0, viewHeight)) / lineHeight);
  const first = Math.max(0, firstVisible - overscan);
  const last = Math.min(total, lastVisible + overscan);
  return { first, last, offset: first * lineHeight, height };
}

// scrollTop that puts line i in the middle of the view (clamped).
export function scrollToLine(i, viewHeight, lineHeight, total) {
  const height = total * lineHeight;
  const want = i * lineHeight - (viewHeight - lineHeight) / 2;
  return Math.max(0, Math.min(want, Math.max(0, height - viewHeight)));
}

// Is the view at (or within `slack` px of) the bottom?  Following stays on
// only while the reader has not scrolled up.
export function atBottom(scrollTop, viewHeight, totalHeight, slack = 4) {
  return scrollTop + viewHeight >= totalHeight - slack;
}

// Index in `matches` (sorted line numbers) of the next match after line
// `from` going forward or backward, wrapping around; -1 when none.
export function nextMatch(matches, from, forward = true) {
  if (!matches.length) return -1;
  if (forward) {
    for (let k = 0; k < matches.length; k++) if (matches[k] > from) return k;
    return 0;
  }
  for (let k = matches.length - 1; k >= 0; k--) if (matches[k] < from) return k;
  return matches.length - 1;
}
