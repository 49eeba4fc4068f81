// The one translation unit that holds toml++'s implementation.
#define TOML_IMPLEMENTATION
#include "config/toml_parser.h"
