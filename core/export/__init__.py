"""Export: merged model → GGUF (F16 and quantized) → verified files ready for llama.cpp, Ollama, LM Studio."""
