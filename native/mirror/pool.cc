// Over ~400 lines: all of librbd's pool-level mirroring API in one place (peers are half of it,
// and their attribute handling shares the key-wiping helpers below).
// Pool-level mirroring: thin primitives over rbd_mirror_* (site name, pool mode, uuid,
// bootstrap, peers, pool-wide status). Pool calls take an IoCtx handle, site name a
// Cluster handle. Validation, paging and parsing live in lib/mirror.
//
// Secrets: bootstrap tokens and peer keys are never put into an OpContext
// (error messages), and peer listings report only whether a key is set.
#include <cstring>

#include "mirror/mirror.h"

namespace rbdstream {

namespace {

// --- site name (per cluster) ---------------------------------------------

Napi::Value SiteNameGet(const Napi::CallbackInfo& info) {
  auto c = Unwrap<Cluster>(info[0], "connection");
  struct R {
    std::string name;
  };
  return RunBlocking<R>(
      info.Env(), OpContext{"get mirror site name"},
      [c](R& r) {
        return GetString(128, &r.name, [&](char* buf, size_t* len) { return rbd_mirror_site_name_get(c->rados, buf, len); });
      },
      [](Napi::Env env, R& r) { return Napi::String::New(env, r.name); });
}

Napi::Value SiteNameSet(const Napi::CallbackInfo& info) {
  auto c = Unwrap<Cluster>(info[0], "connection");
  std::string name = ArgString(info, 1, "site name");
  return RunBlocking<Empty>(info.Env(), OpContext{"set mirror site name"},
                            [c, name](Empty&) { return rbd_mirror_site_name_set(c->rados, name.c_str()); });
}

// --- pool mode, uuid, bootstrap ----------------------------------------------

Napi::Value ModeGet(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  struct R {
    rbd_mirror_mode_t mode = RBD_MIRROR_MODE_DISABLED;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get mirror mode", io.get()),
      [io](R& r) { return rbd_mirror_mode_get(io->io, &r.mode); },
      [](Napi::Env env, R& r) { return Napi::Number::New(env, r.mode); });
}

Napi::Value ModeSet(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  auto mode = static_cast<rbd_mirror_mode_t>(ArgU64(info, 1, "mode"));
  return RunBlocking<Empty>(info.Env(), OpContext::For("set mirror mode", io.get()),
                            [io, mode](Empty&) { return rbd_mirror_mode_set(io->io, mode); });
}

Napi::Value UuidGet(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  struct R {
    std::string uuid;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get mirror uuid", io.get()),
      [io](R& r) {
        char buf[128] = {0};
        size_t len = sizeof(buf);
        int rc = rbd_mirror_uuid_get(io->io, buf, &len);
        if (rc < 0) return rc;
        r.uuid = std::string(buf, strnlen(buf, sizeof(buf)));
        return 0;
      },
      [](Napi::Env env, R& r) { return Napi::String::New(env, r.uuid); });
}

Napi::Value BootstrapCreate(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  struct R {
    std::string token;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("create mirror bootstrap token", io.get()),
      [io](R& r) {
        return GetString(4096, &r.token,
                         [&](char* buf, size_t* len) { return rbd_mirror_peer_bootstrap_create(io->io, buf, len); });
      },
      [](Napi::Env env, R& r) { return Napi::String::New(env, r.token); });
}

// (pool, direction, token) — the token stays out of the error context.
Napi::Value BootstrapImport(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  auto dir = static_cast<rbd_mirror_peer_direction_t>(ArgU64(info, 1, "direction"));
  std::string token = ArgString(info, 2, "token");
  return RunBlocking<Empty>(info.Env(), OpContext::For("import mirror bootstrap token", io.get()),
                            [io, dir, token](Empty&) {
                              return rbd_mirror_peer_bootstrap_import(io->io, dir, token.c_str());
                            });
}

// --- peers -------------------------------------------------------------------

// Lists peer sites into *peers (*count entries, to be freed with rbd_mirror_peer_site_list_cleanup).
int ListPeerSites(rados_ioctx_t io, std::vector<rbd_mirror_peer_site_t>* peers, int* count) {
  int max = 16;
  int rc = -ERANGE;
  while (rc == -ERANGE) {
    peers->assign(max, rbd_mirror_peer_site_t{});
    rc = rbd_mirror_peer_site_list(io, peers->data(), &max);
  }
  *count = max;
  return rc;
}

// Reads a peer's attributes (mon host, key). The raw buffers are wiped: they hold the key.
int GetPeerAttributes(rados_ioctx_t io, const std::string& uuid, std::vector<std::pair<std::string, std::string>>* kv) {
  size_t klen = 1024, vlen = 4096, count = 0;
  std::vector<char> keys, values;
  int rc = -ERANGE;
  for (int tries = 0; tries < 8 && rc == -ERANGE; tries++) {
    keys.assign(klen, 0);
    values.assign(vlen, 0);
    rc = rbd_mirror_peer_site_get_attributes(io, uuid.c_str(), keys.data(), &klen, values.data(), &vlen, &count);
  }
  if (rc == 0) {
    const char* k = keys.data();
    const char* v = values.data();
    for (size_t i = 0; i < count; i++) {
      kv->emplace_back(k, v);
      k += strlen(k) + 1;
      v += strlen(v) + 1;
    }
  }
  std::fill(values.begin(), values.end(), 0);
  return rc;
}

// Overwrites the characters of strings that held a key before they are freed.
void Wipe(std::vector<std::pair<std::string, std::string>>* kv) {
  for (auto& p : *kv) std::fill(p.second.begin(), p.second.end(), '\0');
  kv->clear();
}

int SetPeerAttributes(rados_ioctx_t io, const std::string& uuid, const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string keys, values;
  for (auto& p : kv) {
    keys.append(p.first).push_back('\0');
    values.append(p.second).push_back('\0');
  }
  return rbd_mirror_peer_site_set_attributes(io, uuid.c_str(), keys.data(), values.data(), kv.size());
}

// (pool, direction, siteName, clientName, monHost?, key?) → uuid.
// The peer is removed again if its attributes cannot be stored, so a failed
// add leaves nothing behind.
Napi::Value PeerAdd(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  auto dir = static_cast<rbd_mirror_peer_direction_t>(ArgU64(info, 1, "direction"));
  std::string site = ArgString(info, 2, "site name");
  std::string client = ArgString(info, 3, "client name");
  std::string monHost, key;
  bool hasMon = ArgOptString(info, 4, &monHost);
  bool hasKey = ArgOptString(info, 5, &key);
  struct R {
    std::string uuid;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("add mirror peer", io.get()),
      [io, dir, site, client, monHost, key, hasMon, hasKey](R& r) {
        char uuid[64] = {0};
        int rc = rbd_mirror_peer_site_add(io->io, uuid, sizeof(uuid), dir, site.c_str(), client.c_str());
        if (rc < 0) return rc;
        r.uuid = uuid;
        std::vector<std::pair<std::string, std::string>> kv;
        if (hasMon) kv.emplace_back(RBD_MIRROR_PEER_ATTRIBUTE_NAME_MON_HOST, monHost);
        if (hasKey) kv.emplace_back(RBD_MIRROR_PEER_ATTRIBUTE_NAME_KEY, key);
        if (!kv.empty()) {
          rc = SetPeerAttributes(io->io, r.uuid, kv);
          if (rc < 0) {
            rbd_mirror_peer_site_remove(io->io, uuid);
            return rc;
          }
        }
        return 0;
      },
      [](Napi::Env env, R& r) { return Napi::String::New(env, r.uuid); });
}

Napi::Value PeerRemove(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string uuid = ArgString(info, 1, "peer uuid");
  OpContext ctx = OpContext::For("remove mirror peer " + uuid, io.get());
  return RunBlocking<Empty>(info.Env(), ctx, [io, uuid](Empty&) {
    // librbd answers 0 for an unknown uuid; check first so callers get ENOENT.
    int max = 0;
    std::vector<rbd_mirror_peer_site_t> peers;
    int rc = ListPeerSites(io->io, &peers, &max);
    if (rc < 0) return rc;
    bool found = false;
    for (int i = 0; i < max; i++) found = found || uuid == Str(peers[i].uuid);
    rbd_mirror_peer_site_list_cleanup(peers.data(), max);
    if (!found) return -ENOENT;
    return rbd_mirror_peer_site_remove(io->io, uuid.c_str());
  });
}

// One peer setter: (pool, uuid, value), `set(io, uuid)` runs off the JS thread.
template <typename F>
Napi::Value SetPeer(const Napi::CallbackInfo& info, std::shared_ptr<IoCtx> io, const std::string& uuid,
                    const std::string& label, F set) {
  OpContext ctx = OpContext::For("set mirror peer " + label + " of " + uuid, io.get());
  return RunBlocking<Empty>(info.Env(), ctx, [io, uuid, set](Empty&) { return set(io->io, uuid.c_str()); });
}

Napi::Value PeerSetSiteName(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string uuid = ArgString(info, 1, "peer uuid");
  std::string name = ArgString(info, 2, "value");
  return SetPeer(info, io, uuid, "site name",
                 [name](rados_ioctx_t io, const char* uuid) { return rbd_mirror_peer_site_set_name(io, uuid, name.c_str()); });
}

Napi::Value PeerSetClient(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string uuid = ArgString(info, 1, "peer uuid");
  std::string client = ArgString(info, 2, "value");
  return SetPeer(info, io, uuid, "client name", [client](rados_ioctx_t io, const char* uuid) {
    return rbd_mirror_peer_site_set_client_name(io, uuid, client.c_str());
  });
}

// (pool, uuid, direction: raw rbd_mirror_peer_direction_t)
Napi::Value PeerSetDirection(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string uuid = ArgString(info, 1, "peer uuid");
  auto dir = static_cast<rbd_mirror_peer_direction_t>(ArgU64(info, 2, "direction"));
  return SetPeer(info, io, uuid, "direction",
                 [dir](rados_ioctx_t io, const char* uuid) { return rbd_mirror_peer_site_set_direction(io, uuid, dir); });
}

// (pool, uuid, 'mon_host' | 'key', value): sets one attribute and keeps the other.
Napi::Value PeerSetAttribute(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string uuid = ArgString(info, 1, "peer uuid");
  std::string name = ArgString(info, 2, "attribute");
  std::string value = ArgString(info, 3, "value");
  bool known = name == RBD_MIRROR_PEER_ATTRIBUTE_NAME_MON_HOST || name == RBD_MIRROR_PEER_ATTRIBUTE_NAME_KEY;
  // Error messages name the attribute as they always have ("monHost", "key").
  std::string label = name == RBD_MIRROR_PEER_ATTRIBUTE_NAME_MON_HOST ? "monHost" : name;
  return SetPeer(info, io, uuid, label, [name, value, known](rados_ioctx_t io, const char* uuid) {
    if (!known) return -EINVAL;
    // Read-modify-write: set_attributes replaces the whole map.
    std::vector<std::pair<std::string, std::string>> kv;
    int rc = GetPeerAttributes(io, uuid, &kv);
    if (rc < 0 && rc != -ENOENT) return rc;
    bool replaced = false;
    for (auto& p : kv)
      if (p.first == name) p.second = value, replaced = true;
    if (!replaced) kv.emplace_back(name, value);
    rc = SetPeerAttributes(io, uuid, kv);
    Wipe(&kv);
    return rc;
  });
}

struct PeerEntry {
  std::string uuid, siteName, mirrorUuid, clientName, monHost;
  int direction = 0;
  int64_t lastSeen = 0;
  bool hasKey = false;
};

Napi::Value PeerList(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  struct R {
    std::vector<PeerEntry> peers;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("list mirror peers", io.get()),
      [io](R& r) {
        int max = 0;
        std::vector<rbd_mirror_peer_site_t> peers;
        int rc = ListPeerSites(io->io, &peers, &max);
        if (rc < 0) return rc;
        for (int i = 0; i < max; i++) {
          PeerEntry e;
          e.uuid = Str(peers[i].uuid);
          e.direction = peers[i].direction;
          e.siteName = Str(peers[i].site_name);
          e.mirrorUuid = Str(peers[i].mirror_uuid);
          e.clientName = Str(peers[i].client_name);
          e.lastSeen = static_cast<int64_t>(peers[i].last_seen);
          r.peers.push_back(std::move(e));
        }
        rbd_mirror_peer_site_list_cleanup(peers.data(), max);
        for (auto& e : r.peers) {
          std::vector<std::pair<std::string, std::string>> kv;
          rc = GetPeerAttributes(io->io, e.uuid, &kv);
          if (rc == -ENOENT) continue;
          if (rc < 0) return rc;
          for (const auto& p : kv) {
            if (p.first == RBD_MIRROR_PEER_ATTRIBUTE_NAME_MON_HOST) e.monHost = p.second;
            if (p.first == RBD_MIRROR_PEER_ATTRIBUTE_NAME_KEY) e.hasKey = !p.second.empty();
          }
          Wipe(&kv);
        }
        return 0;
      },
      [](Napi::Env env, R& r) {
        return ToArray(env, r.peers, [&](const PeerEntry& e) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("uuid", e.uuid);
          o.Set("direction", e.direction);
          o.Set("siteName", e.siteName);
          o.Set("mirrorUuid", e.mirrorUuid);
          o.Set("clientName", e.clientName);
          o.Set("lastSeen", Napi::Number::New(env, static_cast<double>(e.lastSeen)));
          o.Set("monHost", e.monHost);
          o.Set("hasKey", e.hasKey);
          return o;
        });
      });
}

// --- pool status ---------------------------------------------------------------

Napi::Value StatusSummary(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  struct R {
    std::vector<std::pair<int, int>> counts;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("get mirror status summary", io.get()),
      [io](R& r) {
        rbd_mirror_image_status_state_t states[32];
        int counts[32];
        size_t len = 32;
        int rc = rbd_mirror_image_status_summary(io->io, states, counts, &len);
        if (rc < 0) return rc;
        for (size_t i = 0; i < len; i++) r.counts.emplace_back(states[i], counts[i]);
        return 0;
      },
      [](Napi::Env env, R& r) {
        // [state, count] pairs, state a raw rbd_mirror_image_status_state_t.
        return ToArray(env, r.counts, [&](const std::pair<int, int>& c) {
          Napi::Array pair = Napi::Array::New(env, 2);
          pair.Set(0u, c.first);
          pair.Set(1u, c.second);
          return pair;
        });
      });
}

Napi::Value GlobalStatusList(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  std::string start = ArgString(info, 1, "start id");
  size_t max = ArgU64(info, 2, "max");
  if (max == 0 || max > 1024) throw Napi::RangeError::New(info.Env(), "max must be in [1, 1024]");
  struct R {
    std::vector<GlobalStatus> list;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("list mirror image status", io.get()),
      [io, start, max](R& r) {
        std::vector<char*> ids(max, nullptr);
        std::vector<rbd_mirror_image_global_status_t> st(max);
        size_t len = 0;
        int rc = rbd_mirror_image_global_status_list(io->io, start.c_str(), max, ids.data(), st.data(), &len);
        if (rc < 0) return rc;
        for (size_t i = 0; i < len; i++) {
          GlobalStatus g;
          g.id = Str(ids[i]);
          CopyGlobalStatus(st[i], &g);
          r.list.push_back(std::move(g));
        }
        rbd_mirror_image_global_status_list_cleanup(ids.data(), st.data(), len);
        return 0;
      },
      [](Napi::Env env, R& r) {
        return ToArray(env, r.list, [&](const GlobalStatus& g) { return GlobalStatusToJs(env, g); });
      });
}

// (pool, modeFilter (-1 = any), startId, max) → one page of { id, mode, globalId, state, primary }.
Napi::Value ImageInfoList(const Napi::CallbackInfo& info) {
  auto io = Unwrap<IoCtx>(info[0], "pool");
  int filter = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  std::string start = ArgString(info, 2, "start id");
  size_t max = ArgU64(info, 3, "max");
  if (max == 0 || max > 1024) throw Napi::RangeError::New(info.Env(), "max must be in [1, 1024]");
  struct Entry {
    std::string id, globalId;
    int mode = 0, state = 0;
    bool primary = false;
  };
  struct R {
    std::vector<Entry> list;
  };
  return RunBlocking<R>(
      info.Env(), OpContext::For("list mirrored images", io.get()),
      [io, filter, start, max](R& r) {
        std::vector<char*> ids(max, nullptr);
        std::vector<rbd_mirror_image_mode_t> modes(max);
        std::vector<rbd_mirror_image_info_t> infos(max);
        size_t len = 0;
        rbd_mirror_image_mode_t mf = static_cast<rbd_mirror_image_mode_t>(filter < 0 ? 0 : filter);
        int rc = rbd_mirror_image_info_list(io->io, filter < 0 ? nullptr : &mf, start.c_str(), max, ids.data(),
                                            modes.data(), infos.data(), &len);
        if (rc < 0) return rc;
        for (size_t i = 0; i < len; i++) {
          Entry e;
          e.id = Str(ids[i]);
          e.mode = modes[i];
          e.globalId = Str(infos[i].global_id);
          e.state = infos[i].state;
          e.primary = infos[i].primary;
          r.list.push_back(std::move(e));
        }
        rbd_mirror_image_info_list_cleanup(ids.data(), infos.data(), len);
        return 0;
      },
      [](Napi::Env env, R& r) {
        return ToArray(env, r.list, [&](const Entry& e) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", e.id);
          o.Set("mode", e.mode);
          o.Set("globalId", e.globalId);
          o.Set("state", e.state);
          o.Set("primary", e.primary);
          return o;
        });
      });
}

}  // namespace

void InitMirrorPool(Napi::Env env, Napi::Object exports) {
  exports.Set("getMirrorSiteName", Napi::Function::New(env, SiteNameGet));
  exports.Set("setMirrorSiteName", Napi::Function::New(env, SiteNameSet));
  exports.Set("getMirrorMode", Napi::Function::New(env, ModeGet));
  exports.Set("setMirrorMode", Napi::Function::New(env, ModeSet));
  exports.Set("getMirrorUuid", Napi::Function::New(env, UuidGet));
  exports.Set("createMirrorBootstrap", Napi::Function::New(env, BootstrapCreate));
  exports.Set("importMirrorBootstrap", Napi::Function::New(env, BootstrapImport));
  exports.Set("addMirrorPeer", Napi::Function::New(env, PeerAdd));
  exports.Set("removeMirrorPeer", Napi::Function::New(env, PeerRemove));
  exports.Set("setMirrorPeerSiteName", Napi::Function::New(env, PeerSetSiteName));
  exports.Set("setMirrorPeerClient", Napi::Function::New(env, PeerSetClient));
  exports.Set("setMirrorPeerDirection", Napi::Function::New(env, PeerSetDirection));
  exports.Set("setMirrorPeerAttribute", Napi::Function::New(env, PeerSetAttribute));
  exports.Set("listMirrorPeers", Napi::Function::New(env, PeerList));
  exports.Set("getMirrorStatusSummary", Napi::Function::New(env, StatusSummary));
  exports.Set("listMirrorGlobalStatus", Napi::Function::New(env, GlobalStatusList));
  exports.Set("listMirrorImageInfo", Napi::Function::New(env, ImageInfoList));
}

}  // namespace rbdstream
