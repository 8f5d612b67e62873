"""The login cookie: written and cleared in the browser by a tiny components-v2 module.

Streamlit cannot set a response cookie from Python; its pages can only read the cookies
of the request that opened the connection (``st.context.cookies``). So the app hands the
token to this component, whose script writes it into ``document.cookie`` of the app's
own origin. ``SameSite=Strict`` keeps other sites from sending it; ``Secure`` is added
when the app is served over HTTPS. The token never appears in a URL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

COMPONENT_NAME = "noteloop_login_cookie"

_JS = """
export default function setLoginCookie({ data }) {
  if (!data || !data.name) return;
  const secure = window.location.protocol === "https:" ? "; Secure" : "";
  const base = `; Path=/; SameSite=Strict${secure}`;
  if (data.clear) {
    document.cookie = `${data.name}=${base}; Max-Age=0`;
  } else if (data.token) {
    document.cookie = `${data.name}=${data.token}${base}; Max-Age=${data.max_age}`;
  }
}
"""


@functools.cache
def _component() -> Callable[..., Any]:
    import streamlit as st

    return st.components.v2.component(COMPONENT_NAME, html="<span hidden></span>", js=_JS)


def set_cookie(name: str, token: str, max_age_seconds: int, key: str = "login-cookie") -> None:
    """Have the browser keep ``token`` in cookie ``name`` for ``max_age_seconds``
    (``key``: one per cookie a page sets, as for any Streamlit element)."""
    _component()(key=key, data={"name": name, "token": token, "max_age": int(max_age_seconds)})


def clear_cookie(name: str) -> None:
    """Have the browser forget cookie ``name``."""
    _component()(key="login-cookie-clear", data={"name": name, "clear": True})
