"""The report's HTML page: one section per deliverable, its claims, figures and the commands that made them."""

from __future__ import annotations

import html
import shlex
from typing import Any

NAV = {"forward": "1.1 forward", "denoise": "1.2-1.4 denoising", "sampling": "1.5-1.6 sampling, CFG",
       "steps": "steps vs time", "sdedit": "1.7 SDEdit", "inpaint": "1.7.2 inpainting", "anagrams": "1.8 anagrams",
       "hybrids": "1.9 hybrids", "one_step": "B1 one-step denoiser", "flow_time": "B2.1 time-conditioned flow",
       "flow": "B2.2 class-conditioned flow", "ablation": "B2.3 the recipe, one factor at a time",
       "ddpm": "B 2024 DDPM", "cfg_scale": "1.6 guidance scale",
       "shipped": "B3 embedded model", "distilled": "B4 few-step student"}


def render_html(sections: list[Any], data: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>fundiff: Fun With Diffusion Models, reproduced</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
        "h1{margin-bottom:.2em}section{border-top:1px solid #ddd;margin-top:2em;padding-top:1em}"
        ".caption{color:#555;font-style:italic}figure{margin:1em 0}img{max-width:100%;image-rendering:pixelated;"
        "border:1px solid #eee}code{background:#f4f4f4;padding:.1em .3em;border-radius:3px;font-size:.9em}"
        "ul.claims li{margin:.3em 0}.meta{color:#777;font-size:.9em}nav a{margin-right:1em}</style></head><body>",
        "<h1>Fun With Diffusion Models, reproduced by fundiff</h1>",
        f"<p class=meta>Backend: <code>{e(str(data['model']))}</code>; seed {data['seed']}; "
        f"{'quick run; ' if data['quick'] else ''}{data['seconds']:.0f} s in all. Every number below was measured by this run; "
        "all of them are in <code>report.json</code>.</p><nav>",
    ]
    parts += [f"<a href='#{e(s.key)}'>{e(NAV.get(s.key, s.key))}</a>" for s in sections]
    parts.append("</nav>")
    for s in sections:
        parts.append(f"<section id='{e(s.key)}'><h2>{e(s.title)}</h2><p class=caption>{e(s.caption)}</p>")
        if s.claims:
            parts.append("<ul class=claims>" + "".join(f"<li>{e(c)}</li>" for c in s.claims) + "</ul>")
        for f in s.figures:
            parts.append(f"<figure><img src='{e(f)}' alt='{e(f)}' loading=lazy><figcaption class=meta>{e(f)}</figcaption></figure>")
        if s.commands:
            parts.append("<p class=meta>Made by: " + "<br>".join(f"<code>{e(shlex.join(c))}</code>" for c in s.commands)
                         + f" ({s.seconds:.0f} s)</p>")
        if s.full_size:
            parts.append("<p class=meta>At the study's size: " + "<br>".join(f"<code>{e(shlex.join(c))}</code>"
                                                                            for c in s.full_size) + "</p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
