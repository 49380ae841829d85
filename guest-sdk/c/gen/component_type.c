// The symbol object_core.c forces the linker to keep. wit-bindgen's own definition lives in an
// object file that also carries the component type; duro's build embeds that type with
// `wasm-tools component embed` instead, so only the symbol is needed. Not generated: keep it.
void __component_type_object_force_link_object_core(void) {}
