// The report page's only style and script, inlined under the page's CSP nonce. The page reads
// fine without the script: its forms post natively and the server sends the browser back.

export const COMPARE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 13px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 1.5em; } h3 { font-size: 1.05em; }
section.policy { border-top: 2px solid #888; margin-top: 1.5em; }
section.endpoint { margin: 1em 0 1em 1em; }
table { border-collapse: collapse; margin: .3em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
ul.tree, ul.tree ul { list-style: none; padding-left: 1.2em; margin: 0; }
ul.tree { padding-left: 0; }
.seg { font-family: ui-monospace, monospace; font-weight: 600; }
.field { display: flex; flex-wrap: wrap; gap: .3em .8em; align-items: baseline; margin: 2px 0 2px 1em; padding: 1px 6px; border-left: 4px solid #bbb; }
.field form, .rules form, .actions form { display: inline; margin: 0; }
.actions { margin: .5em 0; }
.verdict { font-weight: 700; text-transform: uppercase; font-size: 12px; }
.band-perfect { border-color: #2e7d32; } .band-perfect .verdict, .summary.band-perfect strong { color: #2e7d32; }
.band-almost { border-color: #9e9d24; } .band-almost .verdict, .summary.band-almost strong { color: #827717; }
.band-neutral { border-color: #ef6c00; } .band-neutral .verdict, .summary.band-neutral strong { color: #e65100; }
.band-poor { border-color: #c62828; background: #fff3f3; } .band-poor .verdict, .summary.band-poor strong { color: #c62828; }
.verdict-noise { border-color: #bbb; color: #666; background: none; } .verdict-noise .verdict { color: #777; }
.muted { color: #777; }
.kind { font-size: 12px; padding: 0 4px; border-radius: 3px; background: #eee; }
.sample { border: 2px solid #555; padding: .5em 1em; margin: 1em 0; background: #fcfcfc; }
.sides { display: flex; gap: 1em; align-items: flex-start; }
.side { flex: 1 1 0; min-width: 0; }
.side pre { white-space: pre-wrap; word-break: break-all; border: 1px solid #ddd; padding: 4px; background: #fff; max-height: 40em; overflow: auto; }
tr.selected td { font-weight: 700; }
.diff { background: #fff59d; outline: 1px solid #f9a825; }
.diff-changed, .diff-type { background: #ffe0b2; }
.diff-missing { background: #ffcdd2; } .diff-added { background: #c8e6c9; } .diff-order { background: #e1bee7; }
#status:empty { display: none; } #status { padding: 4px 8px; background: #fff8e1; border: 1px solid #ffb300; }
`;

/**
 * Posts a form with fetch and reloads, so the page stays where it was; any failure is shown in
 * #status as text (never as HTML).
 */
export const COMPARE_SCRIPT = `
(function () {
  var status = document.getElementById('status');
  // Says the script ran (the CSP let it): forms now post by fetch.
  document.documentElement.setAttribute('data-script', 'on');
  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement) || form.getAttribute('data-post') === null) return;
    e.preventDefault();
    var buttons = form.querySelectorAll('button');
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    fetch(form.action, { method: 'POST', body: new URLSearchParams(new FormData(form)), headers: { accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) {
        if (r.ok) { location.reload(); return; }
        return r.text().then(function (t) { throw new Error(r.status + ': ' + t); });
      })
      .catch(function (err) {
        if (status) status.textContent = 'failed: ' + err.message;
        for (var i = 0; i < buttons.length; i++) buttons[i].disabled = false;
      });
  });
})();
`;
