// The /docs try-it forms: send the request with fetch and show the status,
// headers and body. Everything else on the page is plain HTML.
(function () {
  'use strict';
  var keyInput = document.getElementById('api-key');

  function show(out, statusText, headers, body) {
    out.hidden = false;
    out.querySelector('.status').textContent = statusText;
    out.querySelector('.headers').textContent = headers;
    out.querySelector('.body').textContent = body;
  }

  function pretty(text) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (e) {
      return text;
    }
  }

  function send(form) {
    var method = form.getAttribute('data-method');
    var headers = {};
    var init = { method: method, headers: headers, cache: 'no-store' };
    if (method === 'POST') {
      var body = {};
      form.querySelectorAll('[data-field]').forEach(function (input) {
        // An optional picker left on "(default)" leaves its field out.
        if (input.hasAttribute('data-optional') && input.value === '') return;
        body[input.name] = input.value;
      });
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (keyInput && keyInput.value) headers.Authorization = 'Bearer ' + keyInput.value;
    var out = form.querySelector('.result');
    out.removeAttribute('data-status');
    show(out, 'Sending…', '', '');
    fetch(form.getAttribute('data-url'), init).then(function (res) {
      return res.text().then(function (text) {
        var lines = [];
        res.headers.forEach(function (value, name) { lines.push(name + ': ' + value); });
        show(out, 'HTTP ' + res.status + ' ' + res.statusText, lines.join('\n'), pretty(text));
        out.setAttribute('data-status', String(res.status));
      });
    }).catch(function (err) {
      show(out, 'Request failed: ' + err.message, '', '');
      out.setAttribute('data-status', 'error');
    });
  }

  document.querySelectorAll('form.try').forEach(function (form) {
    form.hidden = false;
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      send(form);
    });
  });
})();
