// Mirroring helpers shared by native/mirror/pool.cc and native/mirror/image.cc:
// the global status record both sides report. Enums cross as raw numbers (lib/mirror/types.ts
// names them), so a value this build does not know is never mistaken for another.
#pragma once

#include "common.h"

namespace rbdstream {

inline std::string Str(const char* s) { return s ? s : ""; }

struct SiteStatus {
  std::string mirrorUuid, description;
  int state = 0;
  int64_t lastUpdate = 0;
  bool up = false;
};

struct GlobalStatus {
  std::string id, name, globalId;
  int state = 0;
  bool primary = false;
  std::vector<SiteStatus> sites;
};

inline void CopyGlobalStatus(const rbd_mirror_image_global_status_t& g, GlobalStatus* out) {
  out->name = Str(g.name);
  out->globalId = Str(g.info.global_id);
  out->state = g.info.state;
  out->primary = g.info.primary;
  for (uint32_t k = 0; k < g.site_statuses_count; k++) {
    const auto& s = g.site_statuses[k];
    SiteStatus ss;
    ss.mirrorUuid = Str(s.mirror_uuid);
    ss.description = Str(s.description);
    ss.state = s.state;
    ss.lastUpdate = static_cast<int64_t>(s.last_update);
    ss.up = s.up;
    out->sites.push_back(std::move(ss));
  }
}

inline Napi::Object GlobalStatusToJs(Napi::Env env, const GlobalStatus& g) {
  Napi::Object o = Napi::Object::New(env);
  if (!g.id.empty()) o.Set("id", g.id);
  o.Set("name", g.name);
  o.Set("globalId", g.globalId);
  o.Set("state", g.state);
  o.Set("primary", g.primary);
  o.Set("sites", ToArray(env, g.sites, [&](const SiteStatus& s) {
          Napi::Object so = Napi::Object::New(env);
          so.Set("mirrorUuid", s.mirrorUuid);
          so.Set("state", s.state);
          so.Set("description", s.description);
          so.Set("lastUpdate", Napi::Number::New(env, static_cast<double>(s.lastUpdate)));
          so.Set("up", s.up);
          return so;
        }));
  return o;
}

// (pool, startId, max) → one page of { id, name, globalId, state, primary, sites }.
}  // namespace rbdstream
