# Make a gem source (a directory `gem generate_index` indexed, usable as DOCKYARD_RUBYGEMS_URL)
# from gems Debian installed on this machine (ruby-* packages), for machines that cannot reach
# rubygems.org. Debian keeps each gem's files in /usr/share/rubygems-integration/all/gems/NAME-VER
# and its spec beside them; each becomes NAME-VER.gem again.
#
#   ruby scripts/mirrors/gems-from-debian.rb OUT_DIR NAME...    (e.g. sinatra rack webrick)
require "fileutils"
require "rubygems/package"
require "rubygems/indexer"
require "tmpdir"

# Older Debian packages put a gem's files in vendor_ruby, not in a directory of its own: its
# package's file list says which are its.
def staged_from_package(spec_path, spec, tmp)
  pkg = `dpkg -S #{spec_path}`.split(":").first
  abort("gems-from-debian: no package owns #{spec_path}") unless $?.success? && pkg
  `dpkg -L #{pkg}`.split("\n").each do |f|
    next unless File.file?(f)
    rel = if f.start_with?("/usr/lib/ruby/vendor_ruby/") then File.join("lib", f.delete_prefix("/usr/lib/ruby/vendor_ruby/"))
          elsif f.start_with?("/usr/bin/") && spec.executables.include?(File.basename(f)) then File.join(spec.bindir, File.basename(f))
          end
    next unless rel
    FileUtils.mkdir_p(File.join(tmp, File.dirname(rel)))
    FileUtils.cp(f, File.join(tmp, rel))
  end
  tmp
end

root = "/usr/share/rubygems-integration/all"
out = ARGV.shift or abort("usage: gems-from-debian.rb OUT_DIR NAME...")
FileUtils.mkdir_p(File.join(out, "gems"))
ARGV.each do |name|
  specs = Dir[File.join(root, "specifications", "#{name}-[0-9]*.gemspec")]
  abort("gems-from-debian: no Debian gem #{name} (apt-get install ruby-#{name.tr('_', '-')})") if specs.empty?
  specs.each do |path|
    spec = Gem::Specification.load(path)
    dir = File.join(root, "gems", spec.full_name)
    dir = staged_from_package(path, spec, Dir.mktmpdir) unless Dir.exist?(dir)
    Dir.chdir(dir) do
      spec.files = Dir.glob("**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) }
      spec.extensions = []   # Debian ships them built: this mirror carries pure-Ruby gems
      file = Gem::Package.build(spec, true)
      FileUtils.mv(file, File.join(out, "gems", File.basename(file)))
    end
    puts "gems-from-debian: #{spec.full_name}"
  end
end
Gem::Indexer.new(out, build_modern: true).generate_index
