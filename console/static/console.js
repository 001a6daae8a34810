// The console's only script: sortable tables and keyboard shortcuts for the review queue.
"use strict";

function cellValue(cell, numeric) {
  const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  if (!numeric) return raw;
  const number = parseFloat(raw.replace(/[%,，]/g, ""));
  return Number.isNaN(number) ? -Infinity : number;
}

function makeSortable(table) {
  const headers = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
  headers.forEach((th, index) => {
    th.tabIndex = 0;
    th.title = "点击排序";
    const sort = () => {
      const numeric = th.dataset.type === "number";
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = cellValue(a.cells[index], numeric);
        const y = cellValue(b.cells[index], numeric);
        const order = numeric ? x - y : String(x).localeCompare(String(y), "zh-CN");
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (event) => { if (event.key === "Enter") sort(); });
  });
}

function reviewQueue(queue) {
  const items = Array.from(queue.querySelectorAll("li.item"));
  if (!items.length) return;
  let current = 0;
  const fromHash = location.hash ? items.findIndex((li) => "#" + li.id === location.hash) : -1;
  if (fromHash >= 0) current = fromHash;

  function select(index) {
    current = Math.max(0, Math.min(items.length - 1, index));
    items.forEach((li, i) => li.classList.toggle("current", i === current));
    items[current].focus({ preventScroll: true });
    items[current].scrollIntoView({ block: "nearest" });
  }

  function submit(action) {
    const form = items[current].querySelector("form.decide");
    if (!form) return;
    const button = form.querySelector(`button[value="${action}"]`);
    if (button) form.requestSubmit(button);
  }

  items.forEach((li, i) => li.addEventListener("click", () => { current = i; items.forEach((x, j) => x.classList.toggle("current", j === i)); }));
  select(current);

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = ["TEXTAREA", "INPUT", "SELECT"].includes(event.target.tagName) && event.target.type !== "checkbox";
    if (typing) {
      if (event.key === "Escape") { event.target.blur(); items[current].focus(); }
      return;
    }
    const item = items[current];
    const key = event.key.toLowerCase();
    const box = item.querySelector(`input[data-key="${CSS.escape(key)}"]`);
    if (box) { box.checked = !box.checked; event.preventDefault(); return; }
    switch (key) {
      case "j": case "arrowdown": select(current + 1); break;
      case "k": case "arrowup": select(current - 1); break;
      case "enter": submit("confirm"); break;
      case "x": submit("not_grievance"); break;
      case "n": { const note = item.querySelector("textarea[name=note]"); if (note) note.focus(); break; }
      case "a": { const attach = item.querySelector("select[name=risk_item]"); if (attach) attach.focus(); break; }
      default: return;
    }
    event.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  const queue = document.getElementById("queue");
  if (queue) reviewQueue(queue);
});
