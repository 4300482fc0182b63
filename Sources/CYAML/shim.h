// CYAML: libyaml's parser (Debian's libyaml-dev), read event by event by IPVSAgent's YAMLTree.
#ifndef CYAML_SHIM_H
#define CYAML_SHIM_H

#include <yaml.h>

#endif
