"""Sends through wechatpy to a wxpush sandbox at sys.argv[1] with AppSecret sys.argv[2].

wechatpy hard-codes https://api.weixin.qq.com; a subclass moves it, as a user pointing it at
a test server would. Every call raises WeChatClientException unless errcode is 0.
"""
import json
import sys
import urllib.request

from wechatpy import WeChatClient

BASE, SECRET = sys.argv[1], sys.argv[2]
APPID = "wx0123456789abcdef"


class SandboxClient(WeChatClient):
    API_BASE_URL = BASE + "/cgi-bin/"

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=BASE + "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


client = SandboxClient(APPID, SECRET)
client.wxa.API_BASE_URL = BASE + "/"

results = {
    "template message": client.message.send_template(
        "o_wechatpy_1",
        "n44_YbDNEqrrSEEvd8The8HpWYo1gWOVAXj7zIz4vHA",
        {"keyword1": {"value": "巅峰单词800个背诵"}, "keyword2": {"value": "今日任务"}},
        url="https://example.com/a",
        mini_program={"appid": "wx2210554e092c3f99", "pagepath": "pages/index/index"},
    ),
    "mini program subscribe message": client.wxa.send_subscribe_message(
        "o_wechatpy_2",
        "9Aw5ZV1j9xdWTFEkqCpZ7mIBbSC34khK55OtzUPl0rU",
        {"thing1": {"value": "雅思学习第二课时"}, "time2": {"value": "2019年5月18日 13:00"}},
        page="pages/course/detail?room=A-301",
    ),
    "official account subscribe notification": client.message.send_subscribe_message(
        "o_wechatpy_3",
        "bZ3kQ9rWm2LxT7vNc4HsJ8dYp6FgA1eUo5iRtKwXqVs",
        {"thing1": {"value": "雅思写作精讲"}, "time2": {"value": "2026年12月20日 19:30"}},
        page="https://example.com/courses/ielts-w1",
    ),
}
templates = client.template.get_all_private_template()
assert templates["template_list"], templates

for what, answer in results.items():
    assert answer["errcode"] == 0, (what, answer)
    print(f"{what}: errcode {answer['errcode']}, msgid {answer.get('msgid')}")

with urllib.request.urlopen(BASE + "/sandbox/requests") as r:
    log = json.load(r)
paths = [(e["path"], e["errcode"]) for e in log]
assert paths == [
    ("/cgi-bin/message/template/send", 0),
    ("/cgi-bin/message/subscribe/send", 0),
    ("/cgi-bin/message/subscribe/bizsend", 0),
], paths
print(f"sandbox log: {len(log)} requests, all errcode 0; templates listed: {len(templates['template_list'])}")
