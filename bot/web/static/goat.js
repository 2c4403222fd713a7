// goat web: the little the page does in the browser. Everything works without it but two
// conveniences: a question before a delete, and an import's progress drawn as it goes.
"use strict";

document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

function followImport(box) {
  const bar = box.querySelector("progress");
  const state = box.querySelector(".state");
  const count = box.querySelector(".count");
  const lines = box.querySelector(".lines");
  const poll = async () => {
    const answer = await fetch(box.dataset.status, { credentials: "same-origin" });
    if (!answer.ok) return;
    const job = await answer.json();
    bar.max = Math.max(job.total, 1);
    bar.value = job.done;
    state.textContent = job.state;
    count.textContent = `${job.done} / ${job.total}`;
    if (job.state === "done" || job.state === "failed") {
      lines.replaceChildren(...job.lines.map((line) => {
        const item = document.createElement("li");
        item.textContent = line; // text, never markup
        return item;
      }));
      box.dataset.ended = job.state;
      return;
    }
    window.setTimeout(poll, 250);
  };
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".import[data-status]").forEach(followImport);
});
