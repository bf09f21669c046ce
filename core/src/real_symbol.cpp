// core/src/real_symbol.cpp - the lookup guard of real_symbol.hpp (its only
// definition, so every interposer reads the same flag).
#include "real_symbol.hpp"

namespace fiber::detail {

__thread bool tls_in_symbol_lookup __attribute__((tls_model("initial-exec"))) = false;

}  // namespace fiber::detail
