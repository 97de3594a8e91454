"""The processing section of the web client (web/processing.js) against the real `voxcast
serve`, in headless Chromium: the pipelines listed, a gaussian layer added from the panel,
its sigma slider moved with the keyboard and the frame changing, a value outside the schema
typed in and the server's error shown in the layer's card, the pipeline's status shown; and
the controls each kind of schema property gets.

    /usr/bin/python3 -m pytest tests/browser/test_processing_panel.py -q
"""

from __future__ import annotations

import numpy as np
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from test_browser import FIRST_FRAME_S, canvas_rgb, final_frame, open_client, vx, wait


def card_of(d, pipeline):
    cards = d.find_elements(By.CSS_SELECTOR, f".processing-card[data-pipeline='{pipeline}']")
    return cards[0] if cards else None


def sigma_of(ack, layer):
    layers = ack["scene"]["layers"]
    if len(layers) <= layer or not isinstance(layers[layer].get("source"), dict):
        return None
    return layers[layer]["source"]["params"]["sigma"]


def test_add_a_gaussian_layer_move_its_slider_and_see_errors(server, browser):
    d = browser
    open_client(d, server.url("/"))
    d.execute_script("document.getElementById('processing-section').open = true")
    wait(d, "the pipelines listed", lambda: "gaussian" in (d.execute_script(
        "return [...document.querySelectorAll('.pipeline-pick option')].map((o) => o.value)") or []))

    # The dataset's layers hidden, so the frame shows only the processed layer (index n).
    n = len(vx(d, ".scene.layers"))
    d.execute_script("window.voxcast.send({layers: arguments[0]})", [{"visible": False}] * n)
    d.execute_script("""
      const pick = document.querySelector('.pipeline-pick');
      pick.value = 'gaussian';
      document.querySelector('.pipeline-input').value = '0';""")
    d.find_element(By.CSS_SELECTOR, ".pipeline-add").click()
    wait(d, "the gaussian layer's card", lambda: card_of(d, "gaussian"))
    ack = wait(d, "the derived layer in the acked scene",
               lambda: (lambda a: a if a and sigma_of(a, n) == 1.0 else None)(final_frame(d)),
               timeout=FIRST_FRAME_S)
    assert ack["scene"]["layers"][n]["source"]["pipeline"] == "gaussian"
    before = canvas_rgb(d).astype(float)
    assert before.std() > 1, "the processed layer shows nothing"
    wait(d, "status 'loaded' in the card", lambda: card_of(d, "gaussian").find_element(
        By.CSS_SELECTOR, ".pipeline-status").get_attribute("data-status") == "loaded")

    # Move the sigma slider: 30 steps of 0.1 to the right, with the keyboard.
    slider = card_of(d, "gaussian").find_element(By.CSS_SELECTOR, "input[type=range][data-param=sigma]")
    d.execute_script("arguments[0].focus()", slider)  # a click would move it too
    assert float(slider.get_attribute("value")) == 1.0
    for _ in range(30):
        slider.send_keys(Keys.ARROW_RIGHT)
    wait(d, "sigma 4 acked", lambda: abs((sigma_of(vx(d, ".lastAck"), n) or 0) - 4.0) < 1e-6)
    final_frame(d)
    after = canvas_rgb(d).astype(float)
    assert np.abs(after - before).mean() > 1, "the frame did not change with sigma"
    assert after.std() < 0.9 * before.std(), (before.std(), after.std())

    # A value outside the schema, typed into the number box: the server's error, in the card.
    box = card_of(d, "gaussian").find_element(By.CSS_SELECTOR, "input.num[data-param=sigma]")
    box.clear()
    box.send_keys("-1", Keys.ENTER)
    err = wait(d, "the error in the card", lambda: card_of(d, "gaussian").find_element(
        By.CSS_SELECTOR, ".pipeline-error").text)
    assert f"layers[{n}].source.params.sigma" in err and ">= 0" in err, err
    final_frame(d)
    assert abs(sigma_of(vx(d, ".lastAck"), n) - 4.0) < 1e-6, "a rejected value changed the scene"


def test_controls_follow_the_schema(server, browser):
    d = browser
    d.get(server.url("/"))
    r = d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      (async () => {
        const m = await import('./processing.js' + location.search);
        const got = [];
        const kinds = {
          n: [{type: 'number', minimum: 0, maximum: 10, 'x-step': 0.5, default: 1}, 2],
          i: [{type: 'integer', minimum: 1, maximum: 100, default: 10}, 10],
          e: [{type: 'string', enum: ['otsu', 'manual'], default: 'otsu'}, 'manual'],
          b: [{type: 'boolean', default: false}, true],
          s: [{type: 'string', default: ''}, 'x.npy'],
          a: [{oneOf: [{type: 'number', minimum: 0}, {type: 'array'}], default: 1}, [1, 2, 2]],
        };
        const out = {};
        for (const [k, [prop, v]] of Object.entries(kinds)) {
          const row = m.controlFor(k, prop, v, (x) => got.push([k, x]));
          document.body.append(row);
          const inputs = [...row.querySelectorAll('input, select')];
          out[k] = inputs.map((e) => [e.tagName.toLowerCase(), e.type, e.value, e.step || null,
                                      e.min || null, e.max || null, e.checked]);
        }
        const range = document.querySelector('[data-param=n] input[type=range]');
        range.value = 3.5; range.dispatchEvent(new Event('change'));
        const sel = document.querySelector('select[data-param=e]');
        sel.value = 'otsu'; sel.dispatchEvent(new Event('change'));
        const box = document.querySelector('input[type=checkbox][data-param=b]');
        box.click();
        const text = document.querySelector('input[type=text][data-param=a]');
        text.value = '1, 3, 3'; text.dispatchEvent(new Event('change'));
        out.got = got;
        return out;
      })().then(done, (e) => done({error: String(e)}));""")
    assert "error" not in r, r
    assert [x[:2] for x in r["n"]] == [["input", "range"], ["input", "number"]]
    assert r["n"][0][3:6] == ["0.5", "0", "10"] and r["n"][0][2] == "2"
    assert r["i"][0][1] == "range" and r["i"][0][3] == "1" and r["i"][0][5] == "100"
    assert r["e"][0][:3] == ["select", "select-one", "manual"]
    assert r["b"][0][1] == "checkbox" and r["b"][0][6] is True
    assert r["s"][0][1:3] == ["text", "x.npy"]
    assert r["a"][0][1:3] == ["text", "1, 2, 2"]
    assert r["got"] == [["n", 3.5], ["e", "otsu"], ["b", False], ["a", [1, 3, 3]]], r["got"]
