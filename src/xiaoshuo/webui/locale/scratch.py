"""Strings of the 随手写 page (free request → story) and of ``webui/launch.py``: key → {"zh": …, "en": …}.

The Chinese texts of errors keep their English gist in brackets (as the library's errors do).  The
page's labels shared with other pages (写作要求, 候选, 生成 …) are in ``common.py``.
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "scratch_err_sampling": {
        "zh": "采样参数不是合法的数字 (a sampling setting is not a number)",
        "en": "A sampling setting is not a valid number",
    },
    "scratch_sampling_expected": {
        "zh": "温度、Top-p、Top-k、最大长度、重复惩罚、随机种子、候选数都填数字",
        "en": "numbers in temperature, top-p, top-k, max tokens, repetition penalty, seed and candidates",
    },
    "scratch_err_empty_request": {
        "zh": "请先填写写作要求 (empty writing request)",
        "en": "The writing request is empty",
    },
    "scratch_fix_empty_request": {
        "zh": "在「写作要求」里写下要写什么",
        "en": "Write what to write under Writing request",
    },
    # ---- webui/launch.py (shown in the terminal, before any page exists)
    "launch_err_auth_file": {
        "zh": "无法读取认证文件 (cannot read --auth-file)",
        "en": "Cannot read --auth-file",
    },
    "launch_err_bad_auth": {"zh": "认证格式不对 (bad auth)", "en": "Bad --auth value"},
    "launch_fix_bad_auth": {"zh": "写成 用户名:密码", "en": "Write it as USER:PASS"},
    "launch_err_exposed": {
        "zh": "拒绝在没有认证的情况下对外开放 WebUI (refusing to expose the WebUI without authentication)",
        "en": "Refusing to expose the WebUI without authentication",
    },
    "launch_fix_exposed": {
        "zh": "加 --auth 用户名:密码；若确实要无认证开放（任何能访问的人都能读写你的小说和记忆），"
        "加 --insecure-no-auth",
        "en": "Add --auth USER:PASS; to open it without authentication anyway (anyone who can reach it can "
        "read and write your novels and memory), add --insecure-no-auth",
    },
    "launch_auth_message": {  # on the login page (its form says only "Incorrect Credentials" for any refusal)
        "zh": "连续输错 5 次密码后需等待 30 秒再试，之后每错一次等待时间加倍（最长 15 分钟）。",
        "en": "After 5 wrong passwords, wait 30 s before trying again; each further failure doubles the wait "
        "(up to 15 minutes).",
    },
}
