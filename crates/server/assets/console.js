// The console's own script (served from this server; the Content-Security-Policy allows no
// inline script). Everything here is an enhancement: without it, forms still submit and times
// show in UTC.
//
// - `form[data-confirm]`: asks before submitting (destructive actions, applying fixes).
// - `time[datetime]`: shows the reader's local time; the ISO value stays on hover (`title`).
// - `[data-plan-picker]`: "All", "None" and "Only this plan" buttons for a product's plans.
// - A table wider than its place scrolls within itself (phones): it takes keyboard focus, so it
//   can be scrolled without a mouse.
'use strict';

function confirmBeforeSubmit(event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
  if (!window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}
// Capture phase: runs before htmx's own submit handler.
document.addEventListener('submit', confirmBeforeSubmit, true);

const localTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  timeZoneName: 'short',
});

function localizeTimes(root) {
  for (const element of root.querySelectorAll('time[datetime]:not([data-local])')) {
    const at = new Date(element.getAttribute('datetime'));
    if (Number.isNaN(at.getTime())) continue;
    element.textContent = localTime.format(at);
    element.dataset.local = 'true';
  }
}

function pickPlans(event) {
  const button = event.target.closest('button[data-pick]');
  if (!button) return;
  const fieldset = button.closest('[data-plan-picker]');
  if (!fieldset) return;
  event.preventDefault();
  const boxes = fieldset.querySelectorAll('input[type=checkbox][name=enabled_plan]');
  for (const box of boxes) {
    if (button.dataset.pick === 'all') box.checked = true;
    else if (button.dataset.pick === 'none') box.checked = false;
    else box.checked = box.value === button.dataset.pick;
  }
}
document.addEventListener('click', pickPlans);

function focusScrollingTables() {
  for (const table of document.querySelectorAll('table')) {
    if (table.scrollWidth > table.clientWidth + 1) {
      if (!table.hasAttribute('tabindex')) {
        table.tabIndex = 0;
        table.dataset.scrolls = 'true';
      }
    } else if (table.dataset.scrolls) {
      table.removeAttribute('tabindex');
      delete table.dataset.scrolls;
    }
  }
}
window.addEventListener('resize', focusScrollingTables);

function enhance(root) {
  localizeTimes(root);
  focusScrollingTables();
}
document.addEventListener('DOMContentLoaded', () => enhance(document));
document.addEventListener('htmx:afterSwap', (event) => enhance(event.target));
