// Cluster connections: connect, fsid, pools, mon/mgr commands, shutdown.
#include <cstring>

#include "common.h"

namespace rbdstream {

namespace {

struct ConnectArgs {
  std::string conf;  // "" = librados' default search
  bool confGiven = false;
  std::string clusterName;
  std::string user;  // full name, e.g. client.admin
  std::vector<std::pair<std::string, std::string>> config;
};

// rados_connect and rados_create read files and talk to mons: off-thread.
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  auto args = std::make_shared<ConnectArgs>();
  if (o.Has("conf") && o.Get("conf").IsString()) {
    args->conf = o.Get("conf").As<Napi::String>();
    args->confGiven = true;
  }
  if (o.Has("clusterName") && o.Get("clusterName").IsString())
    args->clusterName = o.Get("clusterName").As<Napi::String>();
  args->user = o.Get("user").As<Napi::String>();
  Napi::Array cfg = o.Get("config").As<Napi::Array>();
  for (uint32_t i = 0; i < cfg.Length(); i++) {
    Napi::Array kv = cfg.Get(i).As<Napi::Array>();
    args->config.emplace_back(kv.Get(0u).As<Napi::String>(), kv.Get(1u).As<Napi::String>());
  }
  struct R {
    std::shared_ptr<Cluster> cluster;
  };
  OpContext ctx;
  // Name the user so EACCES/EPERM say whose rights or key failed (never the key itself).
  ctx.op = "connect to cluster as " + args->user + (args->confGiven ? " (conf " + args->conf + ")" : std::string());
  return RunBlocking<R>(
      env, ctx,
      [args](R& r) {
        auto c = std::make_shared<Cluster>();
        int rc = rados_create2(&c->rados, args->clusterName.empty() ? "ceph" : args->clusterName.c_str(),
                               args->user.c_str(), 0);
        if (rc < 0) {
          c->rados = nullptr;
          return rc;
        }
        // Without an explicit conf, fall back to librados' search (CEPH_CONF, /etc/ceph).
        rc = rados_conf_read_file(c->rados, args->confGiven ? args->conf.c_str() : nullptr);
        if (rc < 0 && args->confGiven) return rc;
        rados_conf_parse_env(c->rados, nullptr);
        for (auto& kv : args->config) {
          rc = rados_conf_set(c->rados, kv.first.c_str(), kv.second.c_str());
          if (rc < 0) return rc;
        }
        rc = rados_connect(c->rados);
        if (rc < 0) return rc;
        ArmExitGuard();  // after rados_connect, which loads librados' plugins
        r.cluster = std::move(c);
        return 0;
      },
      [](Napi::Env env, R& r) { return Wrap(env, std::move(r.cluster)); });
}

Napi::Value Fsid(const Napi::CallbackInfo& info) {
  auto c = Unwrap<Cluster>(info[0], "connection");
  char buf[64] = {0};
  int rc = rados_cluster_fsid(c->rados, buf, sizeof(buf));
  if (rc < 0) throw ErrnoError(info.Env(), rc, OpContext{"get cluster fsid"});
  return Napi::String::New(info.Env(), buf);
}

// This client's global id (client.<id>): a local read, like the fsid. What watchers lists report as id.
Napi::Value InstanceId(const Napi::CallbackInfo& info) {
  auto c = Unwrap<Cluster>(info[0], "connection");
  return Napi::Number::New(info.Env(), double(rados_get_instance_id(c->rados)));
}

Napi::Value ListPools(const Napi::CallbackInfo& info) {
  auto c = Unwrap<Cluster>(info[0], "connection");
  struct R {
    std::vector<std::string> names;
  };
  return RunBlocking<R>(
      info.Env(), OpContext{"list pools"},
      [c](R& r) {
        std::vector<char> buf(4096);
        for (;;) {
          int rc = rados_pool_list(c->rados, buf.data(), buf.size());
          if (rc < 0) return rc;
          if (static_cast<size_t>(rc) <= buf.size()) break;
          buf.resize(rc);
        }
        for (const char* p = buf.data(); *p; p += strlen(p) + 1) r.names.emplace_back(p);
        return 0;
      },
      [](Napi::Env env, R& r) { return ToArray(env, r.names, [&](const std::string& n) { return Napi::String::New(env, n); }); });
}

// mon or mgr command: (handle, 'mon'|'mgr', jsonCmd, inbuf?) → { out: Buffer, status: string }
Napi::Value Command(const Napi::CallbackInfo& info) {
  auto c = Unwrap<Cluster>(info[0], "connection");
  bool mgr = ArgString(info, 1, "target") == "mgr";
  std::string cmd = ArgString(info, 2, "command");
  std::string in;
  if (info.Length() > 3 && info[3].IsBuffer()) {
    auto b = info[3].As<Napi::Buffer<char>>();
    in.assign(b.Data(), b.Length());
  }
  struct R {
    std::string out, status;
    int rc = 0;
  };
  OpContext ctx{std::string(mgr ? "mgr" : "mon") + " command"};
  return RunBlocking<R>(
      info.Env(), ctx,
      [c, mgr, cmd, in](R& r) {
        const char* cmds[1] = {cmd.c_str()};
        char *outbuf = nullptr, *outs = nullptr;
        size_t outlen = 0, outslen = 0;
        int rc = mgr ? rados_mgr_command(c->rados, cmds, 1, in.data(), in.size(), &outbuf, &outlen, &outs, &outslen)
                     : rados_mon_command(c->rados, cmds, 1, in.data(), in.size(), &outbuf, &outlen, &outs, &outslen);
        if (outbuf) r.out.assign(outbuf, outlen);
        if (outs) r.status.assign(outs, outslen);
        if (outbuf) rados_buffer_free(outbuf);
        if (outs) rados_buffer_free(outs);
        // JS turns a failure into an error carrying the status text.
        r.rc = rc;
        return 0;
      },
      [](Napi::Env env, R& r) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("out", Napi::Buffer<char>::Copy(env, r.out.data(), r.out.size()));
        o.Set("status", r.status);
        o.Set("rc", r.rc);
        return o;
      });
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Box<Cluster>* box = UnwrapBox<Cluster>(info[0], "connection");
  std::shared_ptr<Cluster> c = std::move(box->ptr);
  // Pools and images still open keep the cluster alive until they close. Moved in: a copy left
  // on the JS thread could be the last, and run rados_shutdown there.
  return RunBlocking<Empty>(info.Env(), OpContext{"close connection"}, [c = std::move(c)](Empty&) mutable {
    c.reset();
    return 0;
  });
}

}  // namespace

void InitConnection(Napi::Env env, Napi::Object exports) {
  exports.Set("connect", Napi::Function::New(env, Connect));
  exports.Set("getFsid", Napi::Function::New(env, Fsid));
  exports.Set("getInstanceId", Napi::Function::New(env, InstanceId));
  exports.Set("listPools", Napi::Function::New(env, ListPools));
  exports.Set("sendCommand", Napi::Function::New(env, Command));
  exports.Set("closeConnection", Napi::Function::New(env, Close));
}

}  // namespace rbdstream
