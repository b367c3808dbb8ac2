// Live updates by short polling: regions marked data-live="<ms>" (and an id) are refreshed
// from a fresh copy of this same page, so the server renders them one way only.
(function () {
  "use strict";
  function regions(doc) {
    return Array.prototype.filter.call(doc.querySelectorAll("[data-live][id]"), function (el) {
      return Number(el.getAttribute("data-live")) > 0;
    });
  }
  var live = regions(document);
  if (!live.length) return;
  var every = Math.min.apply(null, live.map(function (el) { return Number(el.dataset.live); }));
  var busy = false;

  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        // Signed out, or the page is gone: stop, and keep what is shown.
        if (!response.ok || response.redirected) throw new Error("stale");
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions(document).forEach(function (el) {
          var next = fresh.getElementById(el.id);
          // Not while the user is inside it: replacing would steal their focus.
          if (!next || el.contains(document.activeElement)) return;
          if (el.innerHTML !== next.innerHTML) el.innerHTML = next.innerHTML;
          el.setAttribute("data-live", next.getAttribute("data-live") || "0");
        });
      })
      .catch(function () { window.clearInterval(timer); })
      .then(function () { busy = false; });
  }
  var timer = window.setInterval(refresh, every);
})();
