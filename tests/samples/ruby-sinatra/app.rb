require "sinatra/base"

class App < Sinatra::Base
  get "/" do
    "Hello from Sinatra #{Sinatra::VERSION} on Ruby #{RUBY_VERSION}"
  end

  get "/env" do
    ENV.fetch("RACK_ENV", "unset")
  end
end
